//! The little DER this crate needs: writing a CSR, and reading a
//! certificate's validity period. Not a general ASN.1 library.

use alloc::vec::Vec;

/// A tag, length and value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A SET of already encoded parts (the caller keeps DER's order).
pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bits: &[u8]) -> Vec<u8> {
    tlv(0x03, &[&[0u8][..], bits].concat())
}

/// Splits one element off `input`: (tag, content, rest). `None` when the
/// input is truncated or uses a form DER forbids.
pub fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A certificate's validity: (notBefore, notAfter) in Unix seconds.
pub fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (0x30, cert, _) = read(cert)? else { return None };
    let (0x30, tbs, _) = read(cert)? else { return None };
    let (tag, _, mut rest) = read(tbs)?;
    if tag == 0xa0 {
        // Explicit version; the serial number follows.
        rest = read(rest)?.2;
    }
    let rest = read(rest)?.2; // signature algorithm
    let rest = read(rest)?.2; // issuer
    let (0x30, validity, _) = read(rest)? else { return None };
    let (t1, v1, rest) = read(validity)?;
    let (t2, v2, _) = read(rest)?;
    Some((time(t1, v1)?, time(t2, v2)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, v: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, b| b.is_ascii_digit().then(|| acc * 10 + (b - b'0') as i64))
    };
    let (year, rest) = match (tag, v.len()) {
        (0x17, 13) => {
            let yy = digits(&v[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &v[2..])
        }
        (0x18, 15) => (digits(&v[..4])?, &v[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let f = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, h, m, s) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_and_long() {
        assert_eq!(tlv(4, &[1, 2]), [4, 2, 1, 2]);
        let long = tlv(4, &[0; 200]);
        assert_eq!(&long[..3], [4, 0x81, 200]);
        let longer = tlv(4, &[0; 300]);
        assert_eq!(&longer[..4], [4, 0x82, 1, 44]);
        assert_eq!(read(&longer).map(|(t, c, r)| (t, c.len(), r.len())), Some((4, 300, 0)));
    }

    #[test]
    fn truncated_and_odd_input_is_none() {
        assert!(read(&[]).is_none());
        assert!(read(&[0x30]).is_none());
        assert!(read(&[0x30, 5, 1]).is_none());
        assert!(read(&[0x30, 0x80]).is_none());
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(validity(&[0x30, 3, 0x30, 1, 0]).is_none());
        assert!(validity(b"not der at all").is_none());
    }

    #[test]
    fn times() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"000301000000Z"), Some(951_868_800));
        assert_eq!(time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x17, b"701301000000Z"), None);
        assert_eq!(time(0x17, b"70010100000Z"), None);
        assert_eq!(time(0x18, b"2038011903140Xx"), None);
    }

    #[test]
    fn validity_of_a_built_certificate_shape() {
        let utc = |s: &[u8]| tlv(0x17, s);
        let validity_seq = seq(&[&utc(b"250101000000Z"), &tlv(0x18, b"20250401000000Z")]);
        let tbs = seq(&[&tlv(0xa0, &tlv(2, &[2])), &tlv(2, &[1]), &seq(&[]), &seq(&[]), &validity_seq, &seq(&[])]);
        let cert = seq(&[&tbs, &seq(&[]), &bit_string(&[1])]);
        assert_eq!(validity(&cert), Some((1_735_689_600, 1_743_465_600)));
    }
}
