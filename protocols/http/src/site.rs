//! The files a server serves.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

/// A file's bytes: in the image or a boot module for the life of the
/// program (served in place), or on the heap.
#[derive(Debug, Clone)]
pub enum Body {
    /// Bytes that live as long as the program: not copied.
    Static(&'static [u8]),
    /// Bytes read into memory (from a directory or a disk).
    Shared(Rc<[u8]>),
}

impl core::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Static(b) => b,
            Body::Shared(b) => b,
        }
    }
}

impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Body {
        Body::Static(b)
    }
}

impl From<Rc<[u8]>> for Body {
    fn from(b: Rc<[u8]>) -> Body {
        Body::Shared(b)
    }
}

impl From<alloc::vec::Vec<u8>> for Body {
    fn from(b: alloc::vec::Vec<u8>) -> Body {
        Body::Shared(b.into())
    }
}

/// One file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The bytes.
    pub body: Body,
    /// A gzip-compressed variant, served to clients that accept gzip.
    pub gzip: Option<Body>,
    /// Last modification, Unix seconds.
    pub modified: u64,
    /// Media type.
    pub content_type: &'static str,
    /// Strong entity tag, quoted.
    pub etag: String,
}

/// Files by path (without the leading `/`; `dir/index.html` serves `/dir/`).
#[derive(Debug, Clone, Default)]
pub struct Site {
    files: BTreeMap<String, Entry>,
}

/// The media type for a file name's extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, for entity tags.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl Site {
    /// An empty site.
    pub fn new() -> Site {
        Site::default()
    }

    /// Adds `path` (relative, `/`-separated). A file `X.gz` next to `X`
    /// becomes `X`'s gzip variant (and stays servable as itself).
    pub fn add(&mut self, path: &str, body: impl Into<Body>, modified: u64) {
        let body = body.into();
        let path = path.trim_start_matches('/');
        let etag = format!("\"{:016x}-{:x}\"", fnv(&body), body.len());
        let entry = Entry { body, gzip: None, modified, content_type: content_type(path), etag };
        self.files.insert(path.into(), entry);
    }

    /// Links each `X.gz` to `X`; call once after adding every file.
    pub fn link_gzip_variants(&mut self) {
        let pairs: alloc::vec::Vec<(String, Body)> = self
            .files
            .iter()
            .filter_map(|(p, e)| p.strip_suffix(".gz").map(|base| (String::from(base), e.body.clone())))
            .collect();
        for (base, gz) in pairs {
            if let Some(e) = self.files.get_mut(&base) {
                e.gzip = Some(gz);
            }
        }
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.files.get(path)
    }

    /// Whether `path/index.html` exists (so `path` is a directory).
    pub fn is_dir(&self, path: &str) -> bool {
        let mut key = String::from(path.trim_end_matches('/'));
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str("index.html");
        self.files.contains_key(&key)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total bytes of all files.
    pub fn bytes(&self) -> usize {
        self.files.values().map(|e| e.body.len()).sum()
    }
}
