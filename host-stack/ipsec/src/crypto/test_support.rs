//! Helpers shared by the crypto tests.

/// Decodes hex test data (whitespace allowed between digits).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    super::SecretKey::from_hex(&digits)
        .expect("test vector hex")
        .as_bytes()
        .to_vec()
}

/// `payload` followed by RFC 4303 §2.4 default padding (1, 2, 3, ...), the Pad Length and
/// the Next Header, aligned to `align` bytes.
pub(crate) fn pad(payload: &[u8], next_header: u8, align: usize) -> Vec<u8> {
    let pad_len = (align - (payload.len() + 2) % align) % align;
    let mut out = payload.to_vec();
    out.extend((1..=pad_len).map(|i| i as u8));
    out.push(pad_len as u8);
    out.push(next_header);
    out
}
