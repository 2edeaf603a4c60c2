//! Why an archive was refused, and why a read failed.

use alloc::string::String;
use core::fmt;

use morgana_devices::BlockError;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// No file or directory has this key.
    NotFound(String),
    /// The key names a directory where a file was expected.
    IsDir(String),
    /// The key names a file where a directory was expected.
    NotDir(String),
    /// The source failed while reading the key's data.
    Read(String, BlockError),
    /// A buffer for the whole file (this many bytes) could not be allocated.
    OutOfMemory(String, u64),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NotFound(k) => write!(f, "'{k}': no such file or directory"),
            KvError::IsDir(k) => write!(f, "'{k}' is a directory"),
            KvError::NotDir(k) => write!(f, "'{k}' is not a directory"),
            KvError::Read(k, e) => write!(f, "'{k}': {e}"),
            KvError::OutOfMemory(k, n) => write!(f, "'{k}': no memory for its {n} bytes"),
        }
    }
}

impl core::error::Error for KvError {}

/// What is wrong with one entry (or with the archive at one place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The header's checksum does not match its bytes.
    Checksum {
        /// The value in the header.
        stored: u64,
        /// The sum of the header's bytes.
        computed: u64,
    },
    /// No `ustar` magic: not a POSIX ustar header.
    NotUstar,
    /// The old GNU format (`ustar  ` magic): its long names and sizes use
    /// extensions this reader refuses.
    GnuFormat,
    /// A numeric field is not an octal number.
    NotOctal(&'static str),
    /// The name is absolute (starts with `/`).
    Absolute,
    /// The name has a `..` component.
    DotDot,
    /// The name is not UTF-8.
    NotUtf8,
    /// The name has a control character.
    ControlChar,
    /// A file with an empty name (or only `.` components).
    EmptyName,
    /// An entry type this store does not serve: links, devices, FIFOs,
    /// and the pax and GNU extension headers.
    Type(u8),
    /// A directory entry that claims data.
    DirData(u64),
    /// The entry's data (this many bytes) runs past the end of the source.
    PastEnd(u64),
    /// The archive ends (at this offset) without an end-of-archive block.
    Truncated,
    /// More entries than [`crate::Limits::max_entries`].
    TooManyEntries(usize),
    /// Names longer in all than [`crate::Limits::max_name_bytes`].
    NamesTooLong(usize),
    /// A second entry with a name already used (or a file and a
    /// directory with the same name).
    Duplicate,
    /// The source failed.
    Read(BlockError),
}

fn type_name(t: u8) -> &'static str {
    match t {
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'6' => "FIFO",
        b'7' => "contiguous file",
        b'x' => "pax extended header (not supported: make the archive with tar --format=ustar)",
        b'g' => "pax global header (not supported: make the archive with tar --format=ustar)",
        b'L' | b'K' => "GNU long name (not supported: make the archive with tar --format=ustar)",
        _ => "unknown",
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Checksum { stored, computed } => {
                write!(f, "bad header checksum (header says {stored:o}, bytes sum to {computed:o})")
            }
            Problem::NotUstar => f.write_str("not a ustar header (no 'ustar' magic)"),
            Problem::GnuFormat => f.write_str("old GNU tar format, not ustar (make it with tar --format=ustar)"),
            Problem::NotOctal(field) => write!(f, "the {field} field is not an octal number"),
            Problem::Absolute => f.write_str("absolute name (names must be relative)"),
            Problem::DotDot => f.write_str("name with a '..' component"),
            Problem::NotUtf8 => f.write_str("name is not UTF-8"),
            Problem::ControlChar => f.write_str("name has a control character"),
            Problem::EmptyName => f.write_str("file with an empty name"),
            Problem::Type(t) if t.is_ascii_graphic() => {
                write!(
                    f,
                    "entry type '{}' ({}): only regular files and directories are served",
                    *t as char,
                    type_name(*t)
                )
            }
            Problem::Type(t) => write!(f, "entry type {t:#04x}: only regular files and directories are served"),
            Problem::DirData(n) => write!(f, "directory with {n} bytes of data"),
            Problem::PastEnd(n) => write!(f, "its {n} bytes of data run past the end of the archive"),
            Problem::Truncated => f.write_str("archive is truncated (it ends without an end-of-archive block)"),
            Problem::TooManyEntries(n) => write!(f, "more than {n} entries"),
            Problem::NamesTooLong(n) => write!(f, "names longer than {n} bytes in all"),
            Problem::Duplicate => f.write_str("name used by an earlier entry"),
            Problem::Read(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Why an archive was refused: the problem, where it is, and the entry's
/// name as written in its header (lossily decoded) when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarError {
    /// Byte offset of the header (or of the place the archive ends).
    pub offset: u64,
    /// The entry's raw name, if the header had one.
    pub entry: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(name) => write!(f, "tar entry '{}' at byte {}: {}", name.escape_debug(), self.offset, self.problem),
            None => write!(f, "tar archive at byte {}: {}", self.offset, self.problem),
        }
    }
}

impl core::error::Error for TarError {}
