//! Archives written by the real `tar --format=ustar`, read from memory and
//! from block devices of two sector sizes.

mod common;

use common::{populate, run, tar, temp, Disk};
use morgana_kv::{BlockSource, KeyValue, Kind, Memory, Static, Tar};

const LONG_DIR: &str = "a-directory-name-that-is-rather-long/and-another-one-that-is-long-too/and-a-third-level";

fn files() -> Vec<(String, Vec<u8>)> {
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        ("index.html".into(), b"<h1>hello</h1>\n".to_vec()),
        ("empty".into(), Vec::new()),
        ("exact.bin".into(), vec![0xab; 512]),
        ("about/index.html".into(), b"about us\n".to_vec()),
        ("about/deep/x.txt".into(), b"x".to_vec()),
        ("big.bin".into(), big),
        // Over 100 bytes: tar puts the directories in the prefix field.
        (format!("{LONG_DIR}/file-with-a-long-name.txt"), b"long".to_vec()),
    ]
}

/// `tar --format=ustar -cf out.tar -C site .`, as the README says.
fn make(name: &str) -> (Vec<u8>, std::path::PathBuf) {
    let dir = temp(name);
    let owned = files();
    let list: Vec<(&str, &[u8])> = owned.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let site = populate(&dir, &list);
    let bytes = tar(&dir, &["--format=ustar", "-cf", "out.tar", "-C", "site", "."]);
    (bytes, site)
}

async fn check<S: morgana_kv::Source>(store: &mut Tar<S>, site: &std::path::Path) {
    assert_eq!(store.files(), files().len());
    for (path, bytes) in files() {
        assert_eq!(store.get(&path).await.expect(&path), bytes, "{path}");
        assert_eq!(store.size(&path).await, Ok(bytes.len() as u64));
        let mtime = std::fs::metadata(site.join(&path)).unwrap().modified().unwrap();
        let secs = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(store.stat(&path).await.unwrap().modified, secs, "{path} mtime from the header");
    }
    let root = store.list("").await.unwrap();
    let names: Vec<&str> = root.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a-directory-name-that-is-rather-long", "about", "big.bin", "empty", "exact.bin", "index.html"]);
    assert_eq!(root[1].1, Kind::Dir);
    assert_eq!(root[5].1, Kind::File);
    assert_eq!(
        store.list("about").await.unwrap(),
        [("deep".to_string(), Kind::Dir), ("index.html".to_string(), Kind::File)]
    );
    assert_eq!(store.list("/about/").await.unwrap().len(), 2, "leading and trailing slashes tolerated");
    // Partial reads at the edges of sectors and of the file.
    let big = &files()[5].1;
    let mut buf = vec![0u8; 1500];
    for off in [0u64, 1, 511, 512, 4095, 4097, 69_000] {
        let n = store.get_partial("big.bin", off, &mut buf).await.unwrap();
        let want = &big[off as usize..(off as usize + 1500).min(big.len())];
        assert_eq!(&buf[..n], want, "offset {off}");
    }
    assert_eq!(store.get_partial("big.bin", 700_000, &mut buf).await, Ok(0));
    assert_eq!(store.get_partial("big.bin", u64::MAX, &mut buf).await, Ok(0));
    // Errors.
    use morgana_kv::KvError;
    assert_eq!(store.get("nope").await, Err(KvError::NotFound("nope".into())));
    assert_eq!(store.get("about").await, Err(KvError::IsDir("about".into())));
    assert_eq!(store.size("about/deep").await, Err(KvError::IsDir("about/deep".into())));
    assert_eq!(store.list("index.html").await, Err(KvError::NotDir("index.html".into())));
    assert_eq!(store.stat("").await.unwrap().kind, Kind::Dir);
}

#[test]
fn memory() {
    let (bytes, site) = make("memory");
    let mut store = run(Tar::open(Memory(bytes))).expect("a real ustar archive opens");
    run(check(&mut store, &site));
    assert_eq!(store.get_static("index.html"), Ok(None), "a Vec is not static");
}

#[test]
fn static_bytes_are_served_without_copying() {
    let (bytes, site) = make("static");
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let mut store = run(Tar::open(Static(bytes))).unwrap();
    run(check(&mut store, &site));
    let page = store.get_static("about/index.html").unwrap().unwrap();
    assert_eq!(page, b"about us\n");
    assert!(bytes.as_ptr_range().contains(&page.as_ptr()), "a slice of the module, not a copy");
}

#[test]
fn block_devices_read_lazily() {
    let (bytes, site) = make("block");
    for sector in [512, 4096] {
        let disk = Disk::new(bytes.clone(), sector);
        let read = disk.read.clone();
        let mut store = run(Tar::open(BlockSource::new(disk))).expect("opens from a disk");
        // Opening reads headers only: at most a sector per entry, never the 700 KB of data.
        assert!(read.get() <= 15 * sector, "{sector}-byte sectors: opening read {} bytes", read.get());
        run(check(&mut store, &site));
    }
}

#[test]
fn a_disk_larger_than_its_archive() {
    let (mut bytes, site) = make("larger");
    bytes.extend(std::iter::repeat_n(0xee, 100_000)); // whatever follows the end marker
    let mut store = run(Tar::open(BlockSource::new(Disk::new(bytes, 512)))).unwrap();
    run(check(&mut store, &site));
}

#[test]
fn one_end_block_is_enough() {
    let (bytes, site) = make("one-zero");
    // Cut right after the first zero block that follows the last entry.
    let mut end = 0;
    while bytes[end..end + 512].iter().any(|b| *b != 0) || end == 0 {
        let size = u64::from_str_radix(std::str::from_utf8(&bytes[end + 124..end + 135]).unwrap(), 8).unwrap();
        end += 512 + size.div_ceil(512) as usize * 512;
    }
    let mut store = run(Tar::open(Memory(bytes[..end + 512].to_vec()))).expect("one zero block tolerated");
    run(check(&mut store, &site));
}

#[test]
fn looks_like_ustar_tells_archives_from_other_disks() {
    let (bytes, _) = make("looks");
    assert!(morgana_kv::looks_like_ustar(&bytes));
    assert!(!morgana_kv::looks_like_ustar(&[0u8; 512]));
    assert!(!morgana_kv::looks_like_ustar(&bytes[..100]));
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert!(!morgana_kv::looks_like_ustar(&bad), "the checksum is checked too");
}
