//! TSIG (RFC 8945): messages signed with a shared secret key, for zone
//! transfers and NOTIFY.
//!
//! HMAC-SHA256 and HMAC-SHA512 (RustCrypto's `hmac` and `sha2`); HMAC-MD5 is
//! refused by name, other algorithms as unsupported. A MAC must be full
//! length: truncated MACs (§5.2.2.1, optional to accept) get BADTRUNC.
//! Requests are checked in the RFC's order (§5.2): key, MAC, time.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use crate::name::Name;
use crate::wire::HEADER;

/// The TSIG record type.
pub const TSIG: u16 = 250;
/// The ANY class TSIG records are in.
const CLASS_ANY: u16 = 255;
/// Seconds of clock difference allowed by the signatures we make (§10).
pub const FUDGE: u16 = 300;

/// TSIG error codes (§3; the DNS RCODE of such an answer is NOTAUTH).
pub mod error {
    #![allow(missing_docs)]
    pub const BADSIG: u16 = 16;
    pub const BADKEY: u16 = 17;
    pub const BADTIME: u16 = 18;
    pub const BADTRUNC: u16 = 22;
}

/// A MAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `hmac-sha256.`
    HmacSha256,
    /// `hmac-sha512.`
    HmacSha512,
}

impl Algorithm {
    /// By its name as in `--tsig-key` or a TSIG record (case and the final
    /// dot do not matter).
    pub fn parse(text: &str) -> Result<Algorithm, String> {
        match text.to_ascii_lowercase().trim_end_matches('.') {
            "hmac-sha256" => Ok(Algorithm::HmacSha256),
            "hmac-sha512" => Ok(Algorithm::HmacSha512),
            "hmac-md5" | "hmac-md5.sig-alg.reg.int" => {
                Err("hmac-md5 is refused: MD5 is broken (use hmac-sha256)".into())
            }
            other => Err(format!("unsupported TSIG algorithm '{other}' (use hmac-sha256 or hmac-sha512)")),
        }
    }

    /// The algorithm's name in wire form.
    pub fn name(self) -> Name {
        let text = match self {
            Algorithm::HmacSha256 => "hmac-sha256.",
            Algorithm::HmacSha512 => "hmac-sha512.",
        };
        Name::parse(text, None).expect("a valid name")
    }

    /// The full MAC length in bytes.
    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha512 => 64,
        }
    }
}

/// A shared key: its name, algorithm and secret.
#[derive(Clone)]
pub struct Key {
    /// The key's name (the TSIG record's owner).
    pub name: Name,
    /// Its algorithm.
    pub algorithm: Algorithm,
    secret: Vec<u8>,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({}, {:?}, secret hidden)", self.name, self.algorithm)
    }
}

impl Key {
    /// A key; the secret must not be empty.
    pub fn new(name: Name, algorithm: Algorithm, secret: Vec<u8>) -> Result<Key, String> {
        if secret.is_empty() {
            return Err("the TSIG secret is empty".into());
        }
        Ok(Key { name, algorithm, secret })
    }

    /// `NAME=ALGORITHM:BASE64`, as `--tsig-key` takes it.
    pub fn parse(spec: &str) -> Result<Key, String> {
        let (name, rest) = spec.split_once('=').ok_or("expected NAME=ALGORITHM:BASE64")?;
        let (alg, secret) = rest.split_once(':').ok_or("expected NAME=ALGORITHM:BASE64")?;
        let name = Name::parse(name, Some(&Name::root())).map_err(|e| format!("key name '{name}': {e}"))?;
        let algorithm = Algorithm::parse(alg)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("the secret is not base64: {e}"))?;
        Key::new(name, algorithm, secret)
    }

    fn hmac(&self) -> Hmacs {
        match self.algorithm {
            Algorithm::HmacSha256 => {
                Hmacs::Sha256(Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length"))
            }
            Algorithm::HmacSha512 => {
                Hmacs::Sha512(Hmac::<Sha512>::new_from_slice(&self.secret).expect("HMAC takes any key length"))
            }
        }
    }
}

enum Hmacs {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Hmacs {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hmacs::Sha256(m) => m.update(data),
            Hmacs::Sha512(m) => m.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hmacs::Sha256(m) => m.finalize().into_bytes().to_vec(),
            Hmacs::Sha512(m) => m.finalize().into_bytes().to_vec(),
        }
    }

    /// Compares in constant time.
    fn verify(self, mac: &[u8]) -> bool {
        match self {
            Hmacs::Sha256(m) => m.verify_slice(mac).is_ok(),
            Hmacs::Sha512(m) => m.verify_slice(mac).is_ok(),
        }
    }
}

/// A message's TSIG record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tsig {
    /// The key's name.
    pub key: Name,
    /// The algorithm's name.
    pub algorithm: Name,
    /// Seconds since the epoch, 48 bits.
    pub time_signed: u64,
    /// Seconds of difference allowed.
    pub fudge: u16,
    /// The MAC.
    pub mac: Vec<u8>,
    /// The message ID when it was signed.
    pub original_id: u16,
    /// The TSIG error.
    pub error: u16,
    /// Other data (the server's time in a BADTIME answer).
    pub other: Vec<u8>,
    /// Where the record starts in the message.
    start: usize,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Skips a name (compressed or not) at `pos`.
fn skip_name(msg: &[u8], pos: usize) -> Result<usize, &'static str> {
    Name::read(msg, pos).map(|(_, end)| end).map_err(|_| "bad name")
}

/// Finds the TSIG record, which must be the last record of the message.
/// `Ok(None)`: the message is not signed.
pub fn find(msg: &[u8]) -> Result<Option<Tsig>, &'static str> {
    if msg.len() < HEADER {
        return Err("no header");
    }
    let count = |i| u16_at(msg, i).unwrap_or(0) as usize;
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut pos = HEADER;
    for _ in 0..questions {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut found = None;
    for i in 0..records {
        let start = pos;
        pos = skip_name(msg, pos)?;
        let rtype = u16_at(msg, pos).ok_or("truncated record")?;
        let len = u16_at(msg, pos + 8).ok_or("truncated record")? as usize;
        let rdata = pos + 10;
        pos = rdata + len;
        if pos > msg.len() {
            return Err("record data runs past the end");
        }
        if rtype == TSIG {
            if i + 1 != records || count(10) == 0 {
                return Err("a TSIG record that is not the last additional record");
            }
            found = Some((start, rdata, pos));
        }
    }
    if pos != msg.len() {
        return Err("trailing bytes after the message");
    }
    let Some((start, rdata, end)) = found else { return Ok(None) };
    let (key, _) = Name::read(msg, start).map_err(|_| "bad TSIG key name")?;
    let class = u16_at(msg, skip_name(msg, start)? + 2);
    if class != Some(CLASS_ANY) {
        return Err("a TSIG record not in class ANY");
    }
    let (algorithm, p) = Name::read(msg, rdata).map_err(|_| "bad TSIG algorithm name")?;
    let field = |at: usize, n: usize| msg.get(at..at + n).filter(|_| at + n <= end).ok_or("truncated TSIG record");
    let time = field(p, 6)?;
    let time_signed = time.iter().fold(0u64, |t, &b| t << 8 | b as u64);
    let fudge = u16::from_be_bytes(field(p + 6, 2)?.try_into().expect("two bytes"));
    let mac_len = u16::from_be_bytes(field(p + 8, 2)?.try_into().expect("two bytes")) as usize;
    let mac = field(p + 10, mac_len)?.to_vec();
    let q = p + 10 + mac_len;
    let original_id = u16::from_be_bytes(field(q, 2)?.try_into().expect("two bytes"));
    let error = u16::from_be_bytes(field(q + 2, 2)?.try_into().expect("two bytes"));
    let other_len = u16::from_be_bytes(field(q + 4, 2)?.try_into().expect("two bytes")) as usize;
    let other = field(q + 6, other_len)?.to_vec();
    if q + 6 + other_len != end {
        return Err("TSIG record data of the wrong length");
    }
    Ok(Some(Tsig { key, algorithm, time_signed, fudge, mac, original_id, error, other, start }))
}

/// The message as it was before `t` was added: without the record, one
/// additional record fewer, and the original ID.
fn unsigned(msg: &[u8], t: &Tsig) -> Vec<u8> {
    let mut m = msg[..t.start].to_vec();
    m[0..2].copy_from_slice(&t.original_id.to_be_bytes());
    let ar = u16_at(&m, 10).unwrap_or(1).saturating_sub(1);
    m[10..12].copy_from_slice(&ar.to_be_bytes());
    m
}

/// Time signed (48 bits) and fudge.
fn timers(time: u64, fudge: u16) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&time.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&fudge.to_be_bytes());
    b
}

/// The TSIG variables a MAC covers (§4.3.3).
fn variables(key: &Name, algorithm: &Name, time: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(key.wire());
    v.extend_from_slice(&CLASS_ANY.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(algorithm.wire());
    v.extend_from_slice(&timers(time, fudge));
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&(other.len() as u16).to_be_bytes());
    v.extend_from_slice(other);
    v
}

fn prior(mac: &mut Hmacs, prior_mac: Option<&[u8]>) {
    if let Some(p) = prior_mac {
        mac.update(&(p.len() as u16).to_be_bytes());
        mac.update(p);
    }
}

/// Why a signed message was not accepted: the TSIG error to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// [`error::BADKEY`], [`error::BADSIG`], [`error::BADTIME`] or
    /// [`error::BADTRUNC`].
    pub error: u16,
    /// The key, if it was known (a BADTIME or BADTRUNC answer is signed
    /// with it).
    pub key: Option<usize>,
}

/// Checks `msg`'s TSIG record `t` against `keys` at `now` (seconds since
/// the epoch). `prior_mac` is the request's MAC when `msg` is a response.
/// Returns the index of the key that signed it.
pub fn verify(msg: &[u8], t: &Tsig, keys: &[Key], prior_mac: Option<&[u8]>, now: u64) -> Result<usize, Refused> {
    let known = keys.iter().position(|k| k.name == t.key && k.algorithm.name() == t.algorithm);
    let Some(index) = known else { return Err(Refused { error: error::BADKEY, key: None }) };
    let key = &keys[index];
    if t.mac.len() != key.algorithm.mac_len() {
        return Err(Refused { error: error::BADTRUNC, key: Some(index) });
    }
    let mut mac = key.hmac();
    prior(&mut mac, prior_mac);
    mac.update(&unsigned(msg, t));
    mac.update(&variables(&t.key, &t.algorithm, t.time_signed, t.fudge, t.error, &t.other));
    if !mac.verify(&t.mac) {
        return Err(Refused { error: error::BADSIG, key: Some(index) });
    }
    if now.abs_diff(t.time_signed) > t.fudge as u64 {
        return Err(Refused { error: error::BADTIME, key: Some(index) });
    }
    Ok(index)
}

/// Checks a later message of a multi-message answer (an AXFR stream,
/// §5.3.1): its MAC covers the previous MAC, the unsigned messages since
/// (`unsigned_before`, whole, one after another), the message and the
/// timers.
pub fn verify_continuation(
    msg: &[u8],
    t: &Tsig,
    key: &Key,
    prior_mac: &[u8],
    unsigned_before: &[u8],
    now: u64,
) -> Result<(), Refused> {
    if t.key != key.name || t.algorithm != key.algorithm.name() {
        return Err(Refused { error: error::BADKEY, key: None });
    }
    let mut mac = key.hmac();
    prior(&mut mac, Some(prior_mac));
    mac.update(unsigned_before);
    mac.update(&unsigned(msg, t));
    mac.update(&timers(t.time_signed, t.fudge));
    if t.mac.len() != key.algorithm.mac_len() || !mac.verify(&t.mac) {
        return Err(Refused { error: error::BADSIG, key: None });
    }
    if now.abs_diff(t.time_signed) > t.fudge as u64 {
        return Err(Refused { error: error::BADTIME, key: None });
    }
    Ok(())
}

/// Appends a TSIG record and counts it in ARCOUNT.
fn append(msg: &mut Vec<u8>, key: &Name, algorithm: &Name, time: u64, mac: &[u8], error: u16, other: &[u8]) {
    let id = u16_at(msg, 0).unwrap_or(0);
    let ar = u16_at(msg, 10).unwrap_or(0).saturating_add(1);
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
    msg.extend_from_slice(key.wire());
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    let len = algorithm.wire().len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len();
    msg.extend_from_slice(&(len as u16).to_be_bytes());
    msg.extend_from_slice(algorithm.wire());
    msg.extend_from_slice(&timers(time, FUDGE));
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
}

/// Signs `msg` (a complete message without TSIG) with `key` at `time`:
/// a request (`prior_mac` `None`) or the first response to a request with
/// MAC `prior_mac`. `error` and `other` are the TSIG error and other data
/// (BADTIME answers carry the server's time). Returns the MAC, which the
/// next message of a stream covers.
pub fn sign(msg: &mut Vec<u8>, key: &Key, prior_mac: Option<&[u8]>, time: u64, error: u16, other: &[u8]) -> Vec<u8> {
    let algorithm = key.algorithm.name();
    let mut mac = key.hmac();
    prior(&mut mac, prior_mac);
    mac.update(msg);
    mac.update(&variables(&key.name, &algorithm, time, FUDGE, error, other));
    let mac = mac.finish();
    append(msg, &key.name, &algorithm, time, &mac, error, other);
    mac
}

/// Signs a later message of a stream, after the one whose MAC is
/// `prior_mac` (§5.3.1). Returns its MAC.
pub fn sign_continuation(msg: &mut Vec<u8>, key: &Key, prior_mac: &[u8], time: u64) -> Vec<u8> {
    let mut mac = key.hmac();
    prior(&mut mac, Some(prior_mac));
    mac.update(msg);
    mac.update(&timers(time, FUDGE));
    let mac = mac.finish();
    append(msg, &key.name, &key.algorithm.name(), time, &mac, 0, &[]);
    mac
}

/// Adds the unsigned TSIG record of a BADKEY or BADSIG answer (§5.3.2):
/// the request's key and algorithm names, an empty MAC.
pub fn append_unsigned(msg: &mut Vec<u8>, request: &Tsig, time: u64, error: u16) {
    append(msg, &request.key, &request.algorithm, time, &[], error, &[]);
}

/// The server's time as BADTIME's other data (48 bits).
pub fn time_other(now: u64) -> [u8; 6] {
    let mut b = [0u8; 6];
    b.copy_from_slice(&now.to_be_bytes()[2..]);
    b
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self.error {
            error::BADKEY => "BADKEY (unknown key or algorithm)",
            error::BADSIG => "BADSIG (the MAC does not match)",
            error::BADTIME => "BADTIME (the clocks differ by more than the fudge)",
            error::BADTRUNC => "BADTRUNC (a truncated MAC)",
            _ => "TSIG error",
        })
    }
}

#[cfg(test)]
mod tests;
