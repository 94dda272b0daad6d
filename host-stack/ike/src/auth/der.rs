//! The little DER espo reads and writes itself: distinguished names (an identity's text
//! form and its comparison), SEC1 EC private keys, and ECDSA signatures between their DER
//! and fixed-size forms. Every read is bounds-checked; bad input is an error.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;

/// One TLV: its tag, its content and what follows it.
fn tlv(bytes: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let short = || "DER truncated".to_string();
    let tag = *bytes.first().ok_or_else(short)?;
    let first = *bytes.get(1).ok_or_else(short)?;
    let (len, at) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("DER length of an unsupported form".into());
        }
        let raw = bytes.get(2..2 + n).ok_or_else(short)?;
        (
            raw.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let end = at.checked_add(len).ok_or_else(short)?;
    let content = bytes.get(at..end).ok_or_else(short)?;
    Ok((tag, content, &bytes[end..]))
}

fn expect(bytes: &[u8], want: u8) -> Result<(&[u8], &[u8]), String> {
    let (tag, content, rest) = tlv(bytes)?;
    if tag != want {
        return Err(format!("DER tag {tag:#04x} where {want:#04x} belongs"));
    }
    Ok((content, rest))
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// Attribute names of distinguished names and their OIDs (DER content).
const ATTRIBUTES: &[(&str, &[u8])] = &[
    ("CN", &[0x55, 0x04, 0x03]),
    ("C", &[0x55, 0x04, 0x06]),
    ("L", &[0x55, 0x04, 0x07]),
    ("ST", &[0x55, 0x04, 0x08]),
    ("O", &[0x55, 0x04, 0x0a]),
    ("OU", &[0x55, 0x04, 0x0b]),
    ("serialNumber", &[0x55, 0x04, 0x05]),
    ("E", &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
    (
        "DC",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
    ),
];

/// A distinguished name's attributes: (OID, value) in order.
fn attributes(der: &[u8]) -> Result<Vec<(Vec<u8>, String)>, String> {
    let (mut rdns, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return Err("bytes after the distinguished name".into());
    }
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let (mut set, next) = expect(rdns, SET)?;
        rdns = next;
        while !set.is_empty() {
            let (atv, next) = expect(set, SEQUENCE)?;
            set = next;
            let (oid, value) = expect(atv, OID)?;
            let (_, text, end) = tlv(value)?;
            if !end.is_empty() {
                return Err("bytes after an attribute value".into());
            }
            out.push((oid.to_vec(), String::from_utf8_lossy(text).into_owned()));
        }
    }
    Ok(out)
}

/// Whether `der` is a distinguished name espo can read.
pub(super) fn check(der: &[u8]) -> Result<(), String> {
    attributes(der).map(|_| ())
}

/// Two names are the same when their attributes are, in order, values compared without
/// regard to case or surrounding spaces (and without regard to the string type).
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    match (attributes(a), attributes(b)) {
        (Ok(x), Ok(y)) => {
            x.len() == y.len()
                && x.iter().zip(&y).all(|((oa, va), (ob, vb))| {
                    oa == ob && va.trim().eq_ignore_ascii_case(vb.trim())
                })
        }
        _ => a == b,
    }
}

/// `C=CH, O=espo, CN=gw` as text.
pub(super) fn to_text(der: &[u8]) -> String {
    match attributes(der) {
        Ok(attrs) => attrs
            .iter()
            .map(|(oid, v)| {
                let name = ATTRIBUTES
                    .iter()
                    .find(|(_, o)| *o == oid.as_slice())
                    .map_or_else(|| oid_text(oid), |(n, _)| (*n).to_string());
                format!("{name}={v}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => "(unreadable distinguished name)".into(),
    }
}

fn oid_text(oid: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = (value / 40).min(2);
                parts.push(first);
                parts.push(value - 40 * first);
            } else {
                parts.push(value);
            }
            value = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A distinguished name from its text form (`C=CH, O=espo, CN=gw`; `,` or `/` between
/// attributes).
pub(super) fn from_text(text: &str) -> Result<Vec<u8>, String> {
    let mut rdns = Vec::new();
    for part in text
        .split([',', '/'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not NAME=value"))?;
        let name = name.trim();
        let oid = ATTRIBUTES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, o)| *o)
            .ok_or_else(|| {
                format!("unknown attribute `{name}` (CN, C, L, ST, O, OU, serialNumber, E, DC)")
            })?;
        let value = value.trim();
        let tag = if name.eq_ignore_ascii_case("C") {
            PRINTABLE_STRING
        } else if name.eq_ignore_ascii_case("E") || name.eq_ignore_ascii_case("DC") {
            IA5_STRING
        } else {
            UTF8_STRING
        };
        let atv = [encode(OID, oid), encode(tag, value.as_bytes())].concat();
        rdns.extend(encode(SET, &encode(SEQUENCE, &atv)));
    }
    if rdns.is_empty() {
        return Err("no attributes".into());
    }
    Ok(encode(SEQUENCE, &rdns))
}

/// A SEC1 `ECPrivateKey` (RFC 5915): the curve's size in bits, the private scalar and the
/// uncompressed public point.
pub(super) type Sec1Key = (u32, Vec<u8>, Vec<u8>);

pub(super) fn sec1(der: &[u8]) -> Result<Sec1Key, String> {
    let (body, _) = expect(der, SEQUENCE)?;
    let (_version, rest) = expect(body, INTEGER)?;
    let (private, mut rest) = expect(rest, OCTET_STRING)?;
    let (mut curve, mut public) = (0u32, None);
    while !rest.is_empty() {
        let (tag, content, next) = tlv(rest)?;
        rest = next;
        match tag {
            0xa0 => {
                let (oid, _) = expect(content, OID)?;
                curve = match oid {
                    [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => 256,
                    [0x2b, 0x81, 0x04, 0x00, 0x22] => 384,
                    [0x2b, 0x81, 0x04, 0x00, 0x23] => 521,
                    _ => 0,
                };
            }
            0xa1 => {
                let (bits, _) = expect(content, BIT_STRING)?;
                public = Some(bits.get(1..).unwrap_or(&[]).to_vec());
            }
            _ => {}
        }
    }
    let public = public.ok_or("the EC key has no public key; convert it to PKCS#8")?;
    Ok((curve, private.to_vec(), public))
}

/// An ECDSA signature from DER (`SEQUENCE { r, s }`) to `r | s`, each `size` bytes.
pub(super) fn ecdsa_der_to_fixed(der: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let (body, _) = expect(der, SEQUENCE)?;
    let (r, rest) = expect(body, INTEGER)?;
    let (s, _) = expect(rest, INTEGER)?;
    let mut out = Vec::with_capacity(2 * size);
    for v in [r, s] {
        let v = &v[v.iter().take_while(|b| **b == 0).count()..];
        if v.len() > size {
            return Err("ECDSA value longer than the curve".into());
        }
        out.extend(std::iter::repeat_n(0u8, size - v.len()));
        out.extend_from_slice(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_compare_without_case() {
        let der = from_text("C=CH, O=strongSwan, CN=moon.strongswan.org").unwrap();
        assert_eq!(to_text(&der), "C=CH, O=strongSwan, CN=moon.strongswan.org");
        let other = from_text("c=ch/o=STRONGSWAN/cn=Moon.strongswan.org").unwrap();
        assert!(same(&der, &other));
        assert!(!same(
            &der,
            &from_text("C=CH, O=strongSwan, CN=sun").unwrap()
        ));
        assert!(from_text("X=1").is_err());
        assert!(check(&der[..der.len() - 1]).is_err());
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }

    #[test]
    fn truncated_der_is_an_error_not_a_panic() {
        let der = from_text("C=CH, CN=a").unwrap();
        for n in 0..der.len() {
            assert!(attributes(&der[..n]).is_err());
            let _ = sec1(&der[..n]);
            let _ = ecdsa_der_to_fixed(&der[..n], 32);
        }
    }
}
