//! One 512-byte ustar header: checked, decoded, its name made safe.
//!
//! Layout (POSIX.1-1988 ustar): name 0..100, mode 100..108, uid 108..116,
//! gid 116..124, size 124..136, mtime 136..148, chksum 148..156, typeflag
//! 156, linkname 157..257, magic 257..263, version 263..265, uname, gname,
//! devmajor, devminor, prefix 345..500.

use alloc::string::String;

use crate::error::Problem;
use crate::Kind;

/// Size of a header and the unit data is padded to.
pub const BLOCK: usize = 512;

const CHKSUM: core::ops::Range<usize> = 148..156;

/// A decoded header.
#[derive(Debug)]
pub(crate) struct Header {
    /// The normalised name: no leading `./`, no `.` or empty components,
    /// no trailing `/`; `""` for the root (`./`).
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime: u64,
}

/// Whether `block` is all zeros (the end-of-archive marker).
pub(crate) fn is_zero(block: &[u8]) -> bool {
    block.iter().all(|b| *b == 0)
}

/// Whether `block` starts a ustar archive: the `ustar` magic and a
/// checksum that matches. For telling an archive from other disk contents
/// before opening it.
pub fn looks_like_ustar(block: &[u8]) -> bool {
    block.len() >= BLOCK && &block[257..262] == b"ustar" && checksum(&block[..BLOCK]).is_ok()
}

/// The bytes of a NUL-terminated (or full-width) text field.
fn text(field: &[u8]) -> &[u8] {
    field.iter().position(|b| *b == 0).map_or(field, |n| &field[..n])
}

/// The header's raw name (prefix/name), lossily decoded, for messages.
pub(crate) fn raw_name(block: &[u8]) -> Option<String> {
    let (prefix, name) = (text(&block[345..500]), text(&block[..100]));
    if name.is_empty() && prefix.is_empty() {
        return None;
    }
    let mut s = String::from_utf8_lossy(prefix).into_owned();
    if !prefix.is_empty() {
        s.push('/');
    }
    s.push_str(&String::from_utf8_lossy(name));
    Some(s)
}

/// An octal number: optional leading spaces, digits, then only NULs or
/// spaces. `None` for a field with no digits at all.
fn octal(field: &[u8], what: &'static str) -> Result<Option<u64>, Problem> {
    let start = field.iter().position(|b| *b != b' ').unwrap_or(field.len());
    let digits = field[start..].iter().take_while(|b| (b'0'..=b'7').contains(*b)).count();
    if field[start + digits..].iter().any(|b| *b != 0 && *b != b' ') {
        return Err(Problem::NotOctal(what));
    }
    if digits == 0 {
        return Ok(None);
    }
    // At most 12 digits (36 bits): no overflow.
    Ok(Some(field[start..start + digits].iter().fold(0u64, |n, d| n * 8 + u64::from(d - b'0'))))
}

fn required(field: &[u8], what: &'static str) -> Result<u64, Problem> {
    octal(field, what)?.ok_or(Problem::NotOctal(what))
}

/// Checks the header checksum: the sum of its bytes with the checksum
/// field counted as spaces, unsigned (POSIX) or signed (some old tars).
fn checksum(block: &[u8]) -> Result<(), Problem> {
    let stored = required(&block[CHKSUM], "checksum")?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, b) in block[..BLOCK].iter().enumerate() {
        let b = if CHKSUM.contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored) == Ok(signed) {
        Ok(())
    } else {
        Err(Problem::Checksum { stored, computed: unsigned })
    }
}

/// Makes `raw` a key: relative, without `.`/empty components, no `..`.
fn normalise(raw: &[u8]) -> Result<String, Problem> {
    let s = core::str::from_utf8(raw).map_err(|_| Problem::NotUtf8)?;
    if s.chars().any(char::is_control) {
        return Err(Problem::ControlChar);
    }
    if s.starts_with('/') {
        return Err(Problem::Absolute);
    }
    let mut out = String::with_capacity(s.len());
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Problem::DotDot),
            p => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(p);
            }
        }
    }
    Ok(out)
}

/// Decodes and checks one header (not all zeros).
pub(crate) fn parse(block: &[u8]) -> Result<Header, Problem> {
    let block = &block[..BLOCK];
    match &block[257..265] {
        [b'u', b's', b't', b'a', b'r', 0, ..] => {}
        b"ustar  \0" => return Err(Problem::GnuFormat),
        _ => return Err(Problem::NotUstar),
    }
    checksum(block)?;
    for (range, what) in [(100..108, "mode"), (108..116, "uid"), (116..124, "gid")] {
        octal(&block[range], what)?;
    }
    if block[124] & 0x80 != 0 {
        return Err(Problem::NotOctal("size (a base-256 GNU extension)"));
    }
    let size = required(&block[124..136], "size")?;
    let mtime = if block[136] & 0x80 != 0 { 0 } else { octal(&block[136..148], "mtime")?.unwrap_or(0) };
    let kind = match block[156] {
        b'0' | 0 => Kind::File,
        b'5' => Kind::Dir,
        t => return Err(Problem::Type(t)),
    };
    let (prefix, name) = (text(&block[345..500]), text(&block[..100]));
    let mut full = alloc::vec::Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        full.extend_from_slice(prefix);
        full.push(b'/');
    }
    full.extend_from_slice(name);
    let name = normalise(&full)?;
    match kind {
        Kind::File if name.is_empty() => return Err(Problem::EmptyName),
        Kind::Dir if size != 0 => return Err(Problem::DirData(size)),
        _ => {}
    }
    Ok(Header { name, kind, size, mtime })
}
