//! espo-stack: IPsec wire formats, SAD/SPD, ESP/AH transforms, the software engine and
//! the configuration.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod replay;
