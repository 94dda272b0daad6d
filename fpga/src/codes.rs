//! Numeric codes shared by the card and the driver: status/verdict codes, event codes,
//! fault codes, DMA units, algorithm identifiers, admin opcodes and counter indices.
//! Each enum has an `Unknown` variant so decoding device-written bytes never fails.

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident : $repr:ty { $( $(#[doc = $doc:literal])+ $var:ident = $val:literal, )+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[doc = $doc])+ $var, )+
            /// A value this version does not define.
            Unknown($repr),
        }

        impl $name {
            /// Every defined code with its name and description, in value order.
            pub const TABLE: &'static [(&'static str, $repr, &'static str)] =
                &[$( (stringify!($var), $val, concat!($($doc),+)) ),+];

            /// The code's numeric value.
            pub const fn value(self) -> $repr {
                match self {
                    $( $name::$var => $val, )+
                    $name::Unknown(v) => v,
                }
            }

            /// The code for a numeric value (`Unknown` when undefined).
            pub const fn from_value(v: $repr) -> Self {
                match v {
                    $( $val => $name::$var, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                Self::from_value(v)
            }
        }
    };
}

code_enum! {
    /// Result of an admin command, or verdict of a TX/RX completion (datasheet §8.3, §7.5).
    Status: u8 {
        /// Success: TX sent / RX decapsulated / admin command done.
        Ok = 0,
        /// RX: not ESP (or a fragment, or ESP-in-UDP control traffic); delivered as received. TX: sent as posted.
        Bypass = 1,
        /// RX: ESP with no valid inbound SA for its SPI and destination; delivered as received.
        NoSa = 2,
        /// RX: ICV check failed; delivered as received, SA counters unchanged.
        IcvFail = 3,
        /// RX: sequence number inside the replay window and already received; delivered as received.
        Replay = 4,
        /// Frame or inner packet malformed (reason in the STATS counters); RX: delivered as received.
        Malformed = 5,
        /// TX: SA index out of range, invalid, not outbound.
        SaInvalid = 6,
        /// SA reached its hard byte/packet lifetime; not processed.
        SaExpired = 7,
        /// TX: the SA's sequence number space is used up; not sent.
        SeqExhausted = 8,
        /// Result larger than MAX_FRAME (TX) or than the RX buffer (RX: truncated to the buffer).
        TooBig = 9,
        /// An engine error hit this packet; TX: not sent (its sequence number is consumed); RX: delivered as received.
        EngineError = 10,
        /// RX: inner ECN Not-ECT under an outer CE mark (RFC 6040); delivered as received.
        EcnDrop = 11,
        /// RX: sequence number left of the replay window, or one that cannot exist (ESN inference before the first or past the last 2^32 subspace); delivered as received.
        Stale = 12,
        /// Admin: unknown opcode.
        InvalidOpcode = 16,
        /// Admin: SA index not below SA_TABLE_SIZE.
        InvalidSaIndex = 17,
        /// Admin: the SA's algorithm is not in CAP_ALGS.
        AlgUnsupported = 18,
        /// Admin: the SA needs a feature not enabled in DRIVER_FEATURES.
        FeatureNotEnabled = 19,
        /// Admin: a field is out of range (window, key length, flags).
        InvalidField = 20,
        /// Admin: data_len too small for the command.
        DataTooShort = 21,
        /// Admin: the command's data DMA faulted.
        DataDmaFault = 22,
    }
}

code_enum! {
    /// Event-queue entry codes (datasheet §11).
    EventCode: u8 {
        /// An SA crossed its soft byte or packet lifetime (aux: 1 bytes, 2 packets).
        LifetimeSoft = 1,
        /// An SA reached its hard byte or packet lifetime and stopped (aux: 1 bytes, 2 packets).
        LifetimeHard = 2,
        /// An outbound SA sent sequence number 2^32-1 (2^64-1 with ESN) and stopped: hard expiry by sequence number.
        SeqExhausted = 3,
        /// A DMA was refused or failed (detail: IOVA; index: queue or 0xFFFFFFFF; aux: DmaUnit).
        DmaFault = 4,
        /// A crypto engine hung; the datapath halted (detail: engine).
        EngineHang = 5,
        /// The ICV unit reported an error on a packet of an SA (index: SA).
        IcvEngineError = 6,
        /// A queue pair stopped on a fault (index: queue).
        QueueStopped = 7,
    }
}

code_enum! {
    /// FAULT_CODE.CODE values (datasheet §10).
    FaultCode: u8 {
        /// No fault recorded.
        None = 0,
        /// DMA outside every IOMMU window.
        DmaUnmapped = 1,
        /// DMA failed on PCIe (completion error, poisoned data).
        DmaError = 2,
        /// A crypto engine stopped responding; datapath halted.
        EngineHang = 3,
        /// The ICV unit reported an internal error.
        IcvEngine = 4,
        /// Ring configuration refused at ENABLE.
        Config = 5,
    }
}

code_enum! {
    /// The DMA unit that faulted (FAULT_CODE.UNIT, event aux).
    DmaUnit: u8 {
        /// TX descriptor fetch.
        TxDescRead = 1,
        /// TX packet data fetch.
        TxDataRead = 2,
        /// TX completion write.
        TxCplWrite = 3,
        /// RX buffer descriptor fetch.
        RxDescRead = 4,
        /// RX packet data write.
        RxDataWrite = 5,
        /// RX completion write.
        RxCplWrite = 6,
        /// Admin command fetch.
        AdminCmdRead = 7,
        /// Admin command data read or write.
        AdminData = 8,
        /// Admin completion write.
        AdminCplWrite = 9,
        /// Event entry write.
        EventWrite = 10,
    }
}

code_enum! {
    /// Algorithm of an SA (SA_ENTRY.alg); CAP_ALGS bit n announces code n.
    AlgId: u8 {
        /// AES-GCM with a 128-bit key, 16-byte ICV (RFC 4106).
        AesGcm128 = 1,
        /// AES-GCM with a 256-bit key, 16-byte ICV (RFC 4106).
        AesGcm256 = 2,
        /// AES-CBC-128 with HMAC (software only).
        AesCbc128 = 3,
        /// AES-CBC-256 with HMAC (software only).
        AesCbc256 = 4,
        /// ChaCha20-Poly1305 (software only).
        Chacha20Poly1305 = 5,
        /// NULL encryption (software only).
        Null = 6,
    }
}

code_enum! {
    /// Outer IPv4 DF bit of an outbound SA (SA_ENTRY.DF_MODE, datasheet §7.7).
    DfMode: u8 {
        /// Copied from an IPv4 inner packet; set for an IPv6 inner packet.
        Copy = 0,
        /// Always set.
        Set = 1,
        /// Always clear.
        Clear = 2,
    }
}

impl Default for DfMode {
    /// The software engine's default (`df = "copy"`).
    fn default() -> Self {
        DfMode::Copy
    }
}

code_enum! {
    /// Admin command opcodes (datasheet §8).
    AdminOpcode: u8 {
        /// No operation; completes with Ok.
        Nop = 0,
        /// Write an SA table entry (data: SA_ENTRY, then SA_STATE with IMPORT_STATE).
        SaWrite = 1,
        /// Invalidate an SA entry (with EXPORT_STATE: its final SA_STATE is written to data first).
        SaInvalidate = 2,
        /// Read back an SA's state (data: SA_STATE written by the card).
        SaRead = 3,
    }
}

code_enum! {
    /// Counter indices of the STATS block (datasheet §12).
    Counter: u8 {
        /// Frames received on the port.
        RxFrames = 0,
        /// Bytes received on the port (without FCS).
        RxBytes = 1,
        /// Frames sent on the port.
        TxFrames = 2,
        /// Bytes sent on the port (without FCS).
        TxBytes = 3,
        /// Packets decapsulated and delivered.
        RxDecapOk = 4,
        /// Packets encapsulated and sent.
        TxEncapOk = 5,
        /// Frames delivered as bypass.
        RxBypass = 6,
        /// ESP frames with no inbound SA.
        RxNoSa = 7,
        /// ICV failures.
        RxIcvFail = 8,
        /// Replayed or stale (left of the window) sequence numbers.
        RxReplay = 9,
        /// Runt frames (shorter than an Ethernet header).
        RxRunt = 10,
        /// Outer IP header malformed (bad version, header length, total length).
        RxBadOuterIp = 11,
        /// ESP (or UDP) shorter than header, IV and ICV.
        RxBadEsp = 12,
        /// Padding, pad length or next header wrong after decryption.
        RxBadTrailer = 13,
        /// Inner packet malformed after decryption.
        RxBadInner = 14,
        /// Inner packet larger than the RX buffer (truncated).
        RxTooBig = 15,
        /// Frames longer than MAX_FRAME.
        RxOversize = 16,
        /// Inner Not-ECT under outer CE (RFC 6040).
        RxEcnDrop = 17,
        /// Inbound SA past its hard lifetime.
        RxExpired = 18,
        /// TX descriptors naming a bad SA.
        TxSaInvalid = 19,
        /// TX frames malformed (no IP header, bad length, wrong inner version).
        TxMalformed = 20,
        /// TX packets refused: sequence numbers used up.
        TxSeqExhausted = 21,
        /// TX packets refused: hard lifetime.
        TxExpired = 22,
        /// TX results larger than MAX_FRAME.
        TxTooBig = 23,
        /// Packets hit by an engine error.
        EngineErrors = 24,
        /// DMA faults.
        DmaFaults = 25,
        /// Cycles the port asserted flow control because no RX buffer was free.
        RxPauseCycles = 26,
        /// Frames dropped because their queue pair (or the card) is not enabled.
        RxNoQueue = 27,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_kept() {
        for &(_, v, _) in Status::TABLE {
            assert_eq!(Status::from_value(v).value(), v);
        }
        assert_eq!(Status::from_value(200), Status::Unknown(200));
        assert_eq!(Status::from(3), Status::IcvFail);
    }

    #[test]
    fn counter_values_are_dense() {
        for (i, &(_, v, _)) in Counter::TABLE.iter().enumerate() {
            assert_eq!(i, v as usize);
        }
    }
}
