//! Bad archives are refused whole, with the entry and the problem named.

mod common;

use common::{archive, fix_checksum, header, populate, run, tar, temp};
use morgana_kv::{Limits, Memory, Problem, Tar, TarError};

fn open(bytes: Vec<u8>) -> Result<Tar<Memory<Vec<u8>>>, TarError> {
    run(Tar::open(Memory(bytes)))
}

fn refused(bytes: Vec<u8>) -> TarError {
    match open(bytes) {
        Ok(_) => panic!("a bad archive was accepted"),
        Err(e) => e,
    }
}

/// A real archive of `index.html` and `zones/example.com.zone`.
fn real(name: &str) -> Vec<u8> {
    let dir = temp(name);
    populate(&dir, &[("index.html", b"hello\n"), ("zones/example.com.zone", b"@ SOA ns h 1 2 3 4 5\n")]);
    tar(&dir, &["--format=ustar", "-cf", "out.tar", "-C", "site", "."])
}

/// The offset of the header named `name` (raw, as `tar` wrote it).
fn find(bytes: &[u8], name: &str) -> usize {
    (0..bytes.len() / 512)
        .map(|i| i * 512)
        .find(|at| bytes[*at..].starts_with(name.as_bytes()) && bytes[at + name.len()] == 0)
        .expect("entry present")
}

#[test]
fn bad_checksum() {
    let mut bytes = real("checksum");
    let at = find(&bytes, "./index.html");
    bytes[at + 1] = b'X'; // the name changes, the checksum does not
    let e = refused(bytes);
    assert!(matches!(e.problem, Problem::Checksum { .. }), "{e}");
    assert_eq!(e.offset, at as u64);
    let msg = e.to_string();
    assert!(msg.contains("'.Xindex.html'") && msg.contains("bad header checksum"), "{msg}");
}

#[test]
fn no_magic() {
    let mut bytes = real("magic");
    let at = find(&bytes, "./index.html");
    bytes[at + 257..at + 263].copy_from_slice(b"notar\0");
    fix_checksum(&mut bytes[at..at + 512]);
    let e = refused(bytes);
    assert_eq!(e.problem, Problem::NotUstar);
    assert_eq!(e.offset, at as u64);
    // Random bytes are no header: the message names no entry, only where.
    let e = refused(vec![0xff; 4096]);
    assert_eq!(e.problem, Problem::NotUstar, "random bytes");
    assert_eq!(e.entry, None, "random bytes");
    assert_eq!(e.to_string(), "tar archive at byte 0: not a ustar header (no 'ustar' magic)");
}

#[test]
fn not_octal() {
    for (range, field) in [(124..136, "size"), (136..148, "mtime"), (100..108, "mode")] {
        let mut bytes = real("octal");
        let at = find(&bytes, "./index.html");
        bytes[at + range.start] = b'9';
        fix_checksum(&mut bytes[at..at + 512]);
        let e = refused(bytes);
        assert_eq!(e.problem, Problem::NotOctal(field));
        assert!(e.to_string().contains(&format!("the {field} field is not an octal number")), "{e}");
    }
    // Base-256 sizes are a GNU extension.
    let mut bytes = real("base256");
    let at = find(&bytes, "./index.html");
    bytes[at + 124] = 0x80;
    fix_checksum(&mut bytes[at..at + 512]);
    assert!(matches!(refused(bytes).problem, Problem::NotOctal(_)));
}

#[test]
fn huge_size() {
    let mut bytes = real("huge");
    let at = find(&bytes, "./index.html");
    bytes[at + 124..at + 136].copy_from_slice(b"77777777777\0");
    fix_checksum(&mut bytes[at..at + 512]);
    let e = refused(bytes);
    assert_eq!(e.problem, Problem::PastEnd(0o77777777777));
    assert!(e.to_string().contains("run past the end of the archive"), "{e}");
}

#[test]
fn truncated() {
    let bytes = real("truncated");
    let at = find(&bytes, "./zones/example.com.zone");
    // Inside the last file's data.
    assert!(matches!(refused(bytes[..at + 520].to_vec()).problem, Problem::PastEnd(_)));
    // Right after the data, without its padding or an end block.
    assert_eq!(refused(bytes[..at + 1024].to_vec()).problem, Problem::Truncated);
    // Inside a header; and nothing at all.
    assert_eq!(refused(bytes[..at + 100].to_vec()).problem, Problem::Truncated);
    assert_eq!(refused(Vec::new()).problem, Problem::Truncated);
    assert!(refused(Vec::new()).to_string().contains("truncated"));
}

#[test]
fn unsafe_names() {
    for (name, problem) in [
        (&b"../etc/passwd"[..], Problem::DotDot),
        (b"a/../../b", Problem::DotDot),
        (b"/etc/passwd", Problem::Absolute),
        (b"a\x01b", Problem::ControlChar),
        (b"caf\xe9", Problem::NotUtf8),
        (b"./.", Problem::EmptyName),
    ] {
        let e = refused(archive(&[(header(name, b'0', 2), b"hi")]));
        assert_eq!(e.problem, problem, "{}", String::from_utf8_lossy(name));
    }
    // `..` in the prefix field too.
    let mut h = header(b"file", b'0', 0);
    h[345..350].copy_from_slice(b"x/../");
    h[350..352].copy_from_slice(b"..");
    fix_checksum(&mut h);
    let e = refused(archive(&[(h, b"")]));
    assert_eq!(e.problem, Problem::DotDot);
    assert!(e.to_string().contains("'x/../../file'"), "{e}");
}

#[test]
fn links_devices_and_extensions() {
    for t in [b'1', b'2', b'3', b'4', b'6', b'7', b'x', b'g', b'L', b'K', b'Z'] {
        let e = refused(archive(&[(header(b"thing", t, 0), b"")]));
        assert_eq!(e.problem, Problem::Type(t));
    }
    // What the real tar writes for a symlink, a pax long name, GNU format.
    let dir = temp("types");
    let site = populate(&dir, &[("index.html", b"hi")]);
    std::os::unix::fs::symlink("index.html", site.join("link")).unwrap();
    let e = refused(tar(&dir, &["--format=ustar", "-cf", "out.tar", "-C", "site", "."]));
    assert_eq!(e.problem, Problem::Type(b'2'));
    assert!(e.to_string().contains("symbolic link"), "{e}");
    std::fs::remove_file(site.join("link")).unwrap();
    let long = "n".repeat(120);
    std::fs::write(site.join(&long), b"x").unwrap();
    let e = refused(tar(&dir, &["--format=pax", "-cf", "out.tar", "-C", "site", "."]));
    assert_eq!(e.problem, Problem::Type(b'x'));
    assert!(e.to_string().contains("pax extended header"), "{e}");
    let e = refused(tar(&dir, &["--format=gnu", "-cf", "out.tar", "-C", "site", "."]));
    assert_eq!(e.problem, Problem::GnuFormat);
}

#[test]
fn duplicates() {
    let f = |name: &[u8]| (header(name, b'0', 1), &b"x"[..]);
    assert_eq!(refused(archive(&[f(b"a"), f(b"./a")])).problem, Problem::Duplicate);
    assert_eq!(refused(archive(&[f(b"a"), f(b"a/b")])).problem, Problem::Duplicate);
    assert_eq!(refused(archive(&[f(b"a/b"), f(b"a")])).problem, Problem::Duplicate);
    assert_eq!(refused(archive(&[(header(b"d/", b'5', 0), b""), f(b"d")])).problem, Problem::Duplicate);
    // A directory given twice is fine.
    let d = (header(b"d/", b'5', 0), &b""[..]);
    assert!(open(archive(&[d, d, f(b"d/x")])).is_ok());
    assert_eq!(refused(archive(&[(header(b"d", b'5', 3), b"abc")])).problem, Problem::DirData(3));
}

#[test]
fn limits() {
    let f = |name: String| (header(name.as_bytes(), b'0', 0), &b""[..]);
    let entries: Vec<_> = (0..10).map(|i| f(format!("f{i}"))).collect();
    let bytes = archive(&entries);
    let limits = Limits { max_entries: 9, ..Limits::default() };
    let e = run(Tar::open_with(Memory(bytes.clone()), limits)).err().unwrap();
    assert_eq!(e.problem, Problem::TooManyEntries(9));
    let limits = Limits { max_entries: 10, max_name_bytes: 19 };
    let e = run(Tar::open_with(Memory(bytes.clone()), limits)).err().unwrap();
    assert_eq!(e.problem, Problem::NamesTooLong(19));
    let limits = Limits { max_entries: 10, max_name_bytes: 20 };
    assert_eq!(run(Tar::open_with(Memory(bytes), limits)).unwrap().files(), 10);
}
