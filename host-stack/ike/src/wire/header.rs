//! The IKE header (RFC 7296 §3.1): a checked view over the first 28 bytes of a message and
//! its validated representation.

use super::{Error, ExchangeType, PayloadType};

mod field {
    use core::ops::Range;
    pub const SPI_I: Range<usize> = 0..8;
    pub const SPI_R: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// Length of the IKE header in bytes.
pub const HEADER_LEN: usize = 28;
/// The major version espo speaks.
pub const MAJOR_VERSION: u8 = 2;

/// The header flags (§3.1). Bits other than these three are sent as zero and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// Sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// The sender can speak a higher major version.
    pub version: bool,
    /// The message is a response.
    pub response: bool,
}

impl Flags {
    const INITIATOR: u8 = 0x08;
    const VERSION: u8 = 0x10;
    const RESPONSE: u8 = 0x20;

    pub fn from_bits(bits: u8) -> Flags {
        Flags {
            initiator: bits & Self::INITIATOR != 0,
            version: bits & Self::VERSION != 0,
            response: bits & Self::RESPONSE != 0,
        }
    }

    pub fn bits(self) -> u8 {
        (if self.initiator { Self::INITIATOR } else { 0 })
            | (if self.version { Self::VERSION } else { 0 })
            | (if self.response { Self::RESPONSE } else { 0 })
    }
}

/// A view over an IKE message's header. After `new_checked` no accessor can panic.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u64_at(&self, range: core::ops::Range<usize>) -> u64 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.buffer.as_ref()[range]);
        u64::from_be_bytes(raw)
    }

    fn u32_at(&self, range: core::ops::Range<usize>) -> u32 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&self.buffer.as_ref()[range]);
        u32::from_be_bytes(raw)
    }

    pub fn spi_i(&self) -> u64 {
        self.u64_at(field::SPI_I)
    }

    pub fn spi_r(&self) -> u64 {
        self.u64_at(field::SPI_R)
    }

    pub fn next_payload(&self) -> PayloadType {
        PayloadType::from(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }

    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType::from(self.buffer.as_ref()[field::EXCHANGE_TYPE])
    }

    pub fn flags(&self) -> Flags {
        Flags::from_bits(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn message_id(&self) -> u32 {
        self.u32_at(field::MESSAGE_ID)
    }

    /// The Length field: the whole message, header included, in bytes.
    pub fn length(&self) -> u32 {
        self.u32_at(field::LENGTH)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi_i(&mut self, value: u64) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_spi_r(&mut self, value: u64) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_next_payload(&mut self, value: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = value.into();
    }

    pub fn set_version(&mut self, major: u8, minor: u8) {
        self.buffer.as_mut()[field::VERSION] = (major << 4) | (minor & 0x0f);
    }

    pub fn set_exchange_type(&mut self, value: ExchangeType) {
        self.buffer.as_mut()[field::EXCHANGE_TYPE] = value.into();
    }

    pub fn set_flags(&mut self, value: Flags) {
        self.buffer.as_mut()[field::FLAGS] = value.bits();
    }

    pub fn set_message_id(&mut self, value: u32) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_length(&mut self, value: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }
}

/// A validated IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    /// The minor version as received (sent as 0).
    pub minor_version: u8,
    pub exchange_type: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// The whole message's length in bytes.
    pub length: u32,
}

impl Repr {
    /// Reads the header and checks it against the datagram: major version 2 (§2.5),
    /// a Length no shorter than the header and equal to the datagram's length (bytes
    /// after Length are refused).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.major_version() != MAJOR_VERSION {
            return Err(Error::BadMajorVersion);
        }
        let length = packet.length();
        let available = packet.buffer.as_ref().len();
        if (length as usize) < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if (length as usize) > available {
            return Err(Error::Truncated);
        }
        if (length as usize) < available {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            spi_i: packet.spi_i(),
            spi_r: packet.spi_r(),
            next_payload: packet.next_payload(),
            minor_version: packet.minor_version(),
            exchange_type: packet.exchange_type(),
            flags: packet.flags(),
            message_id: packet.message_id(),
            length,
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 28 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), Error> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        packet.set_spi_i(self.spi_i);
        packet.set_spi_r(self.spi_r);
        packet.set_next_payload(self.next_payload);
        packet.set_version(MAJOR_VERSION, self.minor_version);
        packet.set_exchange_type(self.exchange_type);
        packet.set_flags(self.flags);
        packet.set_message_id(self.message_id);
        packet.set_length(self.length);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Repr {
        Repr {
            spi_i: 0x0102_0304_0506_0708,
            spi_r: 0,
            next_payload: PayloadType::Sa,
            minor_version: 0,
            exchange_type: ExchangeType::IkeSaInit,
            flags: Flags {
                initiator: true,
                version: false,
                response: false,
            },
            message_id: 0,
            length: 28,
        }
    }

    #[test]
    fn emit_writes_every_byte_and_parses_back() {
        let mut buf = [0xa5u8; HEADER_LEN];
        let repr = sample();
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(
            buf,
            [
                1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 33, 0x20, 34, 0x08, 0, 0, 0, 0, 0,
                0, 0, 28
            ]
        );
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr);
    }

    #[test]
    fn refuses_wrong_version_and_lengths() {
        let mut buf = [0u8; HEADER_LEN];
        sample()
            .emit(&mut Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let mut v1 = buf;
        v1[17] = 0x10;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&v1[..])),
            Err(Error::BadMajorVersion)
        );
        let mut long = buf.to_vec();
        long.push(0);
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&long[..])),
            Err(Error::Malformed)
        );
        let mut short_len = buf;
        short_len[27] = 27;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&short_len[..])),
            Err(Error::Malformed)
        );
        let mut too_long = buf;
        too_long[27] = 29;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&too_long[..])),
            Err(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&buf[..27]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(Flags::from_bits(0x28).bits(), 0x28);
    }
}
