//! Domain names.
//!
//! A [`Name`] holds the uncompressed wire form with every ASCII letter
//! lowercased, so equality and lookups are case-insensitive (RFC 4343) and
//! any label-aligned suffix of the bytes is itself a name.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;
/// Longest label.
pub const MAX_LABEL: usize = 63;
/// Compression pointers followed before a name is rejected as a loop.
const MAX_POINTERS: usize = 64;

/// A domain name, lowercased, in uncompressed wire form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name {
    wire: Vec<u8>,
}

/// Why a name could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The message ended inside the name.
    Truncated,
    /// A label longer than 63 octets.
    LabelTooLong,
    /// A name longer than 255 octets.
    NameTooLong,
    /// A compression pointer that does not point backwards (a loop).
    BadPointer,
    /// A label type other than a plain label or a pointer.
    BadLabelType,
    /// A presentation-format name that does not parse.
    Syntax(&'static str),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Truncated => f.write_str("name runs past the end of the message"),
            NameError::LabelTooLong => f.write_str("label longer than 63 octets"),
            NameError::NameTooLong => f.write_str("name longer than 255 octets"),
            NameError::BadPointer => f.write_str("compression pointer loop or forward pointer"),
            NameError::BadLabelType => f.write_str("unknown label type"),
            NameError::Syntax(s) => f.write_str(s),
        }
    }
}

impl core::error::Error for NameError {}

impl Name {
    /// The root name.
    pub fn root() -> Name {
        Name { wire: alloc::vec![0] }
    }

    /// Uncompressed wire form, lowercase.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// A name from uncompressed wire bytes (lowercased). The bytes must be a
    /// valid name; this is checked.
    pub fn from_wire_bytes(bytes: &[u8]) -> Result<Name, NameError> {
        let (name, end) = Name::read(bytes, 0)?;
        if end != bytes.len() {
            return Err(NameError::Syntax("trailing bytes after name"));
        }
        Ok(name)
    }

    /// Reads a possibly compressed name at `pos` in `msg`. Returns the name
    /// and the position after it (after the first pointer, if any).
    /// Pointers must point strictly backwards, which rules out loops.
    pub fn read(msg: &[u8], mut pos: usize) -> Result<(Name, usize), NameError> {
        let mut wire = Vec::with_capacity(32);
        let mut end = None;
        let mut pointers = 0;
        loop {
            let len = *msg.get(pos).ok_or(NameError::Truncated)? as usize;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        wire.push(0);
                        if wire.len() > MAX_NAME {
                            return Err(NameError::NameTooLong);
                        }
                        return Ok((Name { wire }, end.unwrap_or(pos + 1)));
                    }
                    let label = msg.get(pos + 1..pos + 1 + len).ok_or(NameError::Truncated)?;
                    if wire.len() + 1 + len + 1 > MAX_NAME {
                        return Err(NameError::NameTooLong);
                    }
                    wire.push(len as u8);
                    wire.extend(label.iter().map(u8::to_ascii_lowercase));
                    pos += 1 + len;
                }
                0xc0 => {
                    let low = *msg.get(pos + 1).ok_or(NameError::Truncated)? as usize;
                    let target = ((len & 0x3f) << 8) | low;
                    if target >= pos || pointers >= MAX_POINTERS {
                        return Err(NameError::BadPointer);
                    }
                    pointers += 1;
                    end.get_or_insert(pos + 2);
                    pos = target;
                }
                _ => return Err(NameError::BadLabelType),
            }
        }
    }

    /// Parses a presentation-format name (`www.example.com.`, `\.`, `\065`).
    /// A name without a final dot is relative to `origin`; `@` is `origin`.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Name, NameError> {
        if text == "@" {
            return origin.cloned().ok_or(NameError::Syntax("'@' without an origin"));
        }
        if text == "." {
            return Ok(Name::root());
        }
        if text.is_empty() {
            return Err(NameError::Syntax("empty name"));
        }
        let bytes = text.as_bytes();
        let mut wire = Vec::with_capacity(text.len() + 2);
        let mut label = Vec::with_capacity(MAX_LABEL);
        let mut i = 0;
        let mut absolute = false;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b'.' => {
                    if label.is_empty() {
                        return Err(NameError::Syntax("empty label"));
                    }
                    push_label(&mut wire, &label)?;
                    label.clear();
                    if i == bytes.len() - 1 {
                        absolute = true;
                    }
                    i += 1;
                }
                b'\\' => {
                    let next = *bytes.get(i + 1).ok_or(NameError::Syntax("escape at end of name"))?;
                    if next.is_ascii_digit() {
                        let digits = bytes.get(i + 1..i + 4).ok_or(NameError::Syntax("short \\DDD escape"))?;
                        if !digits.iter().all(u8::is_ascii_digit) {
                            return Err(NameError::Syntax("bad \\DDD escape"));
                        }
                        let v = digits.iter().fold(0u32, |a, d| a * 10 + (d - b'0') as u32);
                        if v > 255 {
                            return Err(NameError::Syntax("\\DDD escape over 255"));
                        }
                        label.push(v as u8);
                        i += 4;
                    } else {
                        label.push(next);
                        i += 2;
                    }
                }
                _ => {
                    label.push(c);
                    i += 1;
                }
            }
            if label.len() > MAX_LABEL {
                return Err(NameError::LabelTooLong);
            }
        }
        if !label.is_empty() {
            push_label(&mut wire, &label)?;
        }
        if absolute {
            wire.push(0);
        } else {
            let origin = origin.ok_or(NameError::Syntax("relative name without an origin"))?;
            wire.extend_from_slice(&origin.wire);
        }
        if wire.len() > MAX_NAME {
            return Err(NameError::NameTooLong);
        }
        Ok(Name { wire })
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The labels, leftmost first (lowercase, not escaped).
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut pos = 0;
        core::iter::from_fn(move || {
            let len = self.wire[pos] as usize;
            if len == 0 {
                return None;
            }
            let label = &self.wire[pos + 1..pos + 1 + len];
            pos += 1 + len;
            Some(label)
        })
    }

    /// Whether `self` is `other` or below it.
    pub fn is_within(&self, other: &Name) -> bool {
        is_within(&self.wire, &other.wire)
    }

    /// The name without its leftmost label (`None` for the root).
    pub fn parent(&self) -> Option<Name> {
        let len = self.wire[0] as usize;
        (len != 0).then(|| Name { wire: self.wire[1 + len..].to_vec() })
    }

    /// `*.` followed by this name.
    pub fn wildcard_child(&self) -> Result<Name, NameError> {
        let mut wire = Vec::with_capacity(self.wire.len() + 2);
        wire.extend_from_slice(&[1, b'*']);
        wire.extend_from_slice(&self.wire);
        if wire.len() > MAX_NAME {
            return Err(NameError::NameTooLong);
        }
        Ok(Name { wire })
    }

    /// Whether the leftmost label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.wire.starts_with(&[1, b'*'])
    }
}

fn push_label(wire: &mut Vec<u8>, label: &[u8]) -> Result<(), NameError> {
    if label.len() > MAX_LABEL {
        return Err(NameError::LabelTooLong);
    }
    wire.push(label.len() as u8);
    wire.extend(label.iter().map(u8::to_ascii_lowercase));
    Ok(())
}

/// Start offsets of the labels of a wire-form name, then its root byte.
pub fn label_offsets(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = Some(0);
    core::iter::from_fn(move || {
        let p = pos?;
        let len = *wire.get(p)? as usize;
        pos = if len == 0 { None } else { Some(p + 1 + len) };
        Some(p)
    })
}

/// Whether wire-form name `a` equals or is below wire-form name `b`.
pub fn is_within(a: &[u8], b: &[u8]) -> bool {
    a.len() >= b.len() && label_offsets(a).any(|off| &a[off..] == b)
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wire == [0] {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl core::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.wire
    }
}

/// A name as text, for messages.
pub fn to_text(wire: &[u8]) -> String {
    Name::from_wire_bytes(wire).map(|n| alloc::format!("{n}")).unwrap_or_else(|_| String::from("<bad name>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn n(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn rfc1035_3_1_presentation_and_wire() {
        let name = n("WWW.Example.COM.");
        assert_eq!(name.wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(name.to_string(), "www.example.com.");
        assert_eq!(name.label_count(), 3);
        let rel = Name::parse("mail", Some(&n("example.com."))).unwrap();
        assert_eq!(rel, n("mail.example.com."));
        assert_eq!(Name::parse("@", Some(&n("example.com."))).unwrap(), n("example.com."));
        assert_eq!(n("."), Name::root());
    }

    #[test]
    fn rfc1035_5_1_escapes() {
        let name = n("a\\.b.c\\065.");
        assert_eq!(name.label_count(), 2);
        assert_eq!(name.labels().next().unwrap(), b"a.b");
        assert_eq!(name.to_string(), "a\\.b.ca.");
        assert!(Name::parse("a\\256.", None).is_err());
        assert!(Name::parse("a..b.", None).is_err());
    }

    #[test]
    fn rfc1035_2_3_4_limits() {
        let long_label = "a".repeat(64) + ".";
        assert_eq!(Name::parse(&long_label, None), Err(NameError::LabelTooLong));
        let long_name = "abcdefghi.".repeat(26);
        assert_eq!(Name::parse(&long_name, None), Err(NameError::NameTooLong));
    }

    #[test]
    fn rfc1035_4_1_4_compression_pointers() {
        // "example.com" at 0, then "www" + pointer to 0 at 13.
        let msg = b"\x07example\x03com\x00\x03www\xc0\x00";
        let (name, end) = Name::read(msg, 13).unwrap();
        assert_eq!(name, n("www.example.com."));
        assert_eq!(end, msg.len());
        // A pointer to itself, and one pointing forwards.
        assert_eq!(Name::read(b"\xc0\x00", 0), Err(NameError::BadPointer));
        assert_eq!(Name::read(b"\x01a\xc0\x04\x00", 0), Err(NameError::BadPointer));
        // Running off the end.
        assert_eq!(Name::read(b"\x05ab", 0), Err(NameError::Truncated));
        assert_eq!(Name::read(b"\x40", 0), Err(NameError::BadLabelType));
    }

    #[test]
    fn rfc1035_4_1_4_pointer_chains_cannot_build_huge_names() {
        // Each label points back to the previous one: the name grows past
        // 255 octets and must be refused, not built.
        let mut msg = alloc::vec![0u8];
        let mut prev = 0usize;
        for _ in 0..200 {
            let here = msg.len();
            msg.extend_from_slice(&[3, b'a', b'b', b'c', 0xc0 | (prev >> 8) as u8, prev as u8]);
            prev = here;
        }
        assert_eq!(Name::read(&msg, prev), Err(NameError::NameTooLong));
    }

    #[test]
    fn rfc4343_case_insensitive() {
        assert_eq!(n("ExAmPlE.cOm."), n("example.com."));
        assert!(n("a.b.example.com.").is_within(&n("EXAMPLE.com.")));
        assert!(!n("badexample.com.").is_within(&n("example.com.")));
        assert!(n("x.").is_within(&Name::root()));
    }
}
