//! Diffie-Hellman: X25519, P-256 and P-384 through `ring` (which checks the peer's point),
//! MODP-2048 and MODP-3072 (RFC 3526) through `crypto-bigint`'s constant-time modular
//! exponentiation, with the peer's value checked as RFC 6989 asks (1 < y < p - 1).

use core::fmt;

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U2048, U3072};
use zeroize::Zeroizing;

use ring::agreement;

use super::{CryptoError, DhGroup, fill_random};

/// RFC 3526 group 14 (2048-bit MODP), generator 2.
const MODP_2048: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";
/// RFC 3526 group 15 (3072-bit MODP), generator 2.
const MODP_3072: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

/// The shared secret g^ir, zeroized when dropped.
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for SharedSecret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret({} bytes)", self.0.len())
    }
}

enum Private {
    Ecdh(agreement::EphemeralPrivateKey),
    Modp2048(Zeroizing<U2048>),
    Modp3072(Zeroizing<U3072>),
}

/// This end's half of a Diffie-Hellman exchange: a fresh private value and its public one.
pub struct KeyExchange {
    group: DhGroup,
    private: Private,
    public: Vec<u8>,
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExchange")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

fn modp_params<const L: usize>(hex: &str) -> FixedMontyParams<L>
where
    crypto_bigint::Uint<L>: crypto_bigint::Encoding,
{
    let p = crypto_bigint::Uint::<L>::from_be_hex(hex);
    FixedMontyParams::new_vartime(Odd::new(p).expect("the RFC 3526 primes are odd"))
}

impl KeyExchange {
    pub fn generate(group: DhGroup) -> Result<KeyExchange, CryptoError> {
        let rng = ring::rand::SystemRandom::new();
        let ecdh = |alg: &'static agreement::Algorithm| -> Result<(Private, Vec<u8>), CryptoError> {
            let key = agreement::EphemeralPrivateKey::generate(alg, &rng)
                .map_err(|_| CryptoError::Random)?;
            let public = key.compute_public_key().map_err(|_| CryptoError::Random)?;
            let mut bytes = public.as_ref().to_vec();
            if alg != &agreement::X25519 {
                // Uncompressed point 0x04 | x | y: IKE sends x | y (RFC 5903 §7).
                bytes.remove(0);
            }
            Ok((Private::Ecdh(key), bytes))
        };
        let (private, public) = match group {
            DhGroup::Curve25519 => ecdh(&agreement::X25519)?,
            DhGroup::Ecp256 => ecdh(&agreement::ECDH_P256)?,
            DhGroup::Ecp384 => ecdh(&agreement::ECDH_P384)?,
            DhGroup::Modp2048 => {
                let params = modp_params::<{ U2048::LIMBS }>(MODP_2048);
                let x = random_exponent::<{ U2048::LIMBS }>(256)?;
                let g = FixedMontyForm::new(&U2048::from_u8(2), &params);
                let y = g.pow(&*x).retrieve();
                (Private::Modp2048(x), y.to_be_bytes().as_ref().to_vec())
            }
            DhGroup::Modp3072 => {
                let params = modp_params::<{ U3072::LIMBS }>(MODP_3072);
                let x = random_exponent::<{ U3072::LIMBS }>(384)?;
                let g = FixedMontyForm::new(&U3072::from_u8(2), &params);
                let y = g.pow(&*x).retrieve();
                (Private::Modp3072(x), y.to_be_bytes().as_ref().to_vec())
            }
        };
        Ok(KeyExchange {
            group,
            private,
            public,
        })
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The KE payload's data: MODP big-endian to the prime's length, ECP x | y, X25519's
    /// 32 bytes.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's public value (the KE payload's data).
    pub fn agree(self, peer: &[u8]) -> Result<SharedSecret, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError::BadPublicValue("wrong length"));
        }
        match self.private {
            Private::Ecdh(key) => {
                let (alg, bytes): (&'static agreement::Algorithm, Vec<u8>) = match self.group {
                    DhGroup::Curve25519 => (&agreement::X25519, peer.to_vec()),
                    DhGroup::Ecp256 => (&agreement::ECDH_P256, [&[4u8][..], peer].concat()),
                    _ => (&agreement::ECDH_P384, [&[4u8][..], peer].concat()),
                };
                let unparsed = agreement::UnparsedPublicKey::new(alg, bytes);
                let secret =
                    agreement::agree_ephemeral(key, &unparsed, |s| Zeroizing::new(s.to_vec()))
                        .map_err(|_| CryptoError::BadPublicValue("not a point of the group"))?;
                if self.group == DhGroup::Curve25519 && secret.iter().all(|b| *b == 0) {
                    return Err(CryptoError::BadPublicValue("a low-order point"));
                }
                Ok(SharedSecret(secret))
            }
            Private::Modp2048(x) => modp_agree::<{ U2048::LIMBS }>(MODP_2048, &x, peer),
            Private::Modp3072(x) => modp_agree::<{ U3072::LIMBS }>(MODP_3072, &x, peer),
        }
    }
}

/// A private exponent of `bytes` random bytes (twice the group's strength, as RFC 3526 §8
/// suggests, rounded up to a whole number of bytes of a conservative size).
fn random_exponent<const L: usize>(
    bytes: usize,
) -> Result<Zeroizing<crypto_bigint::Uint<L>>, CryptoError>
where
    crypto_bigint::Uint<L>: crypto_bigint::Encoding,
{
    let mut buf = Zeroizing::new(vec![0u8; L * crypto_bigint::Limb::BYTES]);
    let start = buf.len() - bytes.min(buf.len() - 1);
    fill_random(&mut buf[start..])?;
    // Below the prime: the top byte stays 0.
    Ok(Zeroizing::new(crypto_bigint::Uint::<L>::from_be_slice(
        &buf,
    )))
}

fn modp_agree<const L: usize>(
    hex: &str,
    x: &crypto_bigint::Uint<L>,
    peer: &[u8],
) -> Result<SharedSecret, CryptoError>
where
    crypto_bigint::Uint<L>: crypto_bigint::Encoding,
{
    let params = modp_params::<L>(hex);
    let p = crypto_bigint::Uint::<L>::from_be_hex(hex);
    let y = crypto_bigint::Uint::<L>::from_be_slice(peer);
    let one = crypto_bigint::Uint::<L>::ONE;
    let p_minus_1 = p.wrapping_sub(&one);
    // RFC 6989 §2.1: 1 < y < p - 1 (a public value, so a variable-time check is fine).
    if y <= one || y >= p_minus_1 {
        return Err(CryptoError::BadPublicValue("outside 1 < y < p - 1"));
    }
    let shared = FixedMontyForm::new(&y, &params).pow(x).retrieve();
    Ok(SharedSecret(Zeroizing::new(
        shared.to_be_bytes().as_ref().to_vec(),
    )))
}

/// The 2048-bit prime, for tests of the public-value check.
#[cfg(test)]
pub(super) fn tests_prime_2048() -> &'static str {
    MODP_2048
}
