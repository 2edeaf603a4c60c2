//! Response rate limiting (RRL) for UDP, after NSD's and Knot's: a token
//! bucket per client network (/24 for IPv4, /56 for IPv6), kind of response
//! and name. Over the limit a response is dropped, except that every Nth
//! one over it is "slipped": sent truncated (TC set, no records), so a real
//! client retries over TCP, which is never limited.
//!
//! The buckets live in a table fixed at creation: a set-associative cache of
//! [`WAYS`]-entry sets, indexed by a keyed SipHash of the bucket's key, so
//! no flood can grow it and no outsider can aim at a set. A new key evicts
//! the entry of its set that limits least: the one with the most tokens
//! once refilled (an idle bucket refills completely), the least recently
//! seen among equals. Flows being limited therefore outlive a spoofed flood
//! of one-off sources.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::hash::Hasher;
use core::net::IpAddr;
use siphasher::sip::SipHasher24;

use crate::answer::Catalog;
use crate::name::Name;
use crate::wire::{flags, rcode, Query, HEADER};

/// IPv4 clients are counted by /24 (as NSD and Knot do).
pub const IPV4_PREFIX: u8 = 24;
/// IPv6 clients are counted by /56 (Knot; NSD uses /64).
pub const IPV6_PREFIX: u8 = 56;
/// Entries per set of the table.
pub const WAYS: usize = 8;
/// The largest `rate` (tokens are counted in thousandths in a `u32`).
pub const MAX_RATE: u32 = 1_000_000;
/// The largest table, in entries (25 MiB).
pub const MAX_SIZE: usize = 1 << 20;
/// Thousandths of a token per response.
const COST: u64 = 1000;
/// At most one summary log line per this many milliseconds.
const REPORT_MS: u64 = 10_000;

/// RRL settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Responses per second per bucket (also the burst); 0 turns RRL off.
    pub rate: u32,
    /// Every `slip`th response over the limit is sent truncated; 0: none.
    pub slip: u32,
    /// Table entries (rounded up to a power-of-two number of sets).
    pub size: usize,
}

impl Default for Config {
    /// NSD's rate and slip; a table sized for a small VM.
    fn default() -> Self {
        Config { rate: 200, slip: 2, size: 8192 }
    }
}

/// What a response is, for its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Records in the answer section.
    Positive,
    /// NOERROR without records: the name exists, the type does not.
    Nodata,
    /// NXDOMAIN.
    Nxdomain,
    /// A delegation to another zone's servers.
    Referral,
    /// Any other rcode (REFUSED, FORMERR, NOTIMP, BADVERS...).
    Error,
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: send it.
    Send,
    /// Over the limit: send it truncated (see [`slip`]).
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Keyed hash of (kind, network, name).
    tag: u64,
    /// When `tokens` was last brought up to date.
    last_ms: u64,
    /// Thousandths of a response.
    tokens: u32,
    /// Responses dropped or slipped so far, for the slip cadence.
    limited: u32,
}

type Set = heapless::Vec<Bucket, WAYS, u8>;

/// The rate limiter: fixed memory, one per server (shared by its sockets).
pub struct Limiter {
    sets: Box<[Set]>,
    rate: u64,
    slip: u32,
    key: (u64, u64),
    dropped: u64,
    slipped: u64,
    last_report_ms: Option<u64>,
}

impl core::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Limiter {{ rate: {}, slip: {}, entries: {} }}", self.rate, self.slip, self.capacity())
    }
}

impl Limiter {
    /// A limiter for `config`, `None` when its rate is 0. `seed` keys the
    /// hash; it should be unpredictable.
    pub fn new(config: &Config, seed: [u8; 16]) -> Option<Limiter> {
        if config.rate == 0 {
            return None;
        }
        let sets = config.size.clamp(1, MAX_SIZE).div_ceil(WAYS).next_power_of_two();
        let half = |i: usize| u64::from_le_bytes(seed[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(Limiter {
            sets: (0..sets).map(|_| Set::new()).collect(),
            rate: config.rate.min(MAX_RATE) as u64,
            slip: config.slip,
            key: (half(0), half(8)),
            dropped: 0,
            slipped: 0,
            last_report_ms: None,
        })
    }

    /// Entries the table holds at most.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.sets.iter().map(|s| s.len()).sum()
    }

    /// Whether no entry is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn tag(&self, client: IpAddr, kind: Kind, name: &[u8]) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.key.0, self.key.1);
        h.write_u8(kind as u8);
        match network(client).0 {
            IpAddr::V4(v4) => h.write(&v4.octets()[..IPV4_PREFIX as usize / 8]),
            IpAddr::V6(v6) => h.write(&v6.octets()[..IPV6_PREFIX as usize / 8]),
        }
        h.write(name);
        h.finish()
    }

    /// Accounts for one response of `kind` about `name` (lowercase wire
    /// form) to `client` at `now_ms` (a monotonic clock) and says what to
    /// do with it.
    pub fn check(&mut self, now_ms: u64, client: IpAddr, kind: Kind, name: &[u8]) -> Verdict {
        let tag = self.tag(client, kind, name);
        let (rate, cap) = (self.rate, self.rate * COST);
        let refill = |b: &Bucket| {
            (b.tokens as u64).saturating_add(now_ms.saturating_sub(b.last_ms).saturating_mul(rate)).min(cap)
        };
        let index = tag as usize & (self.sets.len() - 1);
        let set = &mut self.sets[index];
        let i = match set.iter().position(|b| b.tag == tag) {
            Some(i) => i,
            None => {
                let fresh = Bucket { tag, last_ms: now_ms, tokens: cap as u32, limited: 0 };
                match set.push(fresh) {
                    Ok(()) => set.len() - 1,
                    Err(fresh) => {
                        let victim =
                            (0..set.len()).max_by_key(|&i| (refill(&set[i]), Reverse(set[i].last_ms))).unwrap_or(0);
                        set[victim] = fresh;
                        victim
                    }
                }
            }
        };
        let b = &mut set[i];
        let tokens = refill(b);
        b.last_ms = now_ms;
        if tokens >= COST {
            b.tokens = (tokens - COST) as u32;
            return Verdict::Send;
        }
        b.tokens = tokens as u32;
        b.limited = b.limited.wrapping_add(1);
        if self.slip != 0 && b.limited % self.slip == 0 {
            self.slipped += 1;
            Verdict::Slip
        } else {
            self.dropped += 1;
            Verdict::Drop
        }
    }

    /// Responses dropped and slipped since the last report, if there were
    /// any: at once the first time, then at most once per ten seconds.
    pub fn report(&mut self, now_ms: u64) -> Option<(u64, u64)> {
        let due = self.last_report_ms.is_none_or(|t| now_ms.saturating_sub(t) >= REPORT_MS);
        if !due || self.dropped + self.slipped == 0 {
            return None;
        }
        self.last_report_ms = Some(now_ms);
        Some((core::mem::take(&mut self.dropped), core::mem::take(&mut self.slipped)))
    }
}

/// The network a client is counted in and its prefix length (IPv4-mapped
/// IPv6 addresses count as IPv4).
pub fn network(client: IpAddr) -> (IpAddr, u8) {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    match client {
        IpAddr::V4(v4) => (IpAddr::V4((u32::from(v4) & (u32::MAX << (32 - IPV4_PREFIX))).into()), IPV4_PREFIX),
        IpAddr::V6(v6) => (IpAddr::V6((u128::from(v6) & (u128::MAX << (128 - IPV6_PREFIX))).into()), IPV6_PREFIX),
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    match b.get(i..i + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

/// The end of the question of `msg`, if it has exactly one.
fn question_end(msg: &[u8]) -> Option<usize> {
    if u16_at(msg, 4) != 1 {
        return None;
    }
    let end = Name::read(msg, HEADER).ok()?.1 + 4;
    (end <= msg.len()).then_some(end)
}

/// The kind of `response` to `query` (`None`: it did not parse) and the
/// name its bucket is kept under, as NSD does: the query name for positive
/// answers, the delegation point for referrals, the zone otherwise (so
/// floods of made-up names share one bucket per zone).
pub fn classify<'a>(query: Option<&'a Query>, response: &[u8], catalog: &'a Catalog) -> (Kind, Cow<'a, [u8]>) {
    const ROOT: &[u8] = &[0];
    let Some(q) = query else { return (Kind::Error, Cow::Borrowed(ROOT)) };
    let zone = || Cow::Borrowed(catalog.find_zone(&q.qname).map_or(ROOT, |z| z.origin.wire()));
    let header = u16_at(response, 2);
    let (answers, authority) = (u16_at(response, 6), u16_at(response, 8));
    if q.edns.is_some_and(|e| e.version > 0) {
        return (Kind::Error, zone()); // BADVERS, whose code is in the OPT record
    }
    match header & 0xf {
        rcode::NOERROR => {}
        rcode::NXDOMAIN => return (Kind::Nxdomain, zone()),
        _ => return (Kind::Error, zone()),
    }
    if header & flags::TC != 0 {
        return (Kind::Positive, Cow::Borrowed(q.qname.wire()));
    }
    if answers == 0 && authority > 0 && header & flags::AA == 0 {
        // The authority section starts with the delegation's NS records.
        let cut = question_end(response).and_then(|at| Name::read(response, at).ok());
        return (Kind::Referral, cut.map_or_else(zone, |(n, _)| Cow::Owned(Vec::from(n.wire()))));
    }
    if answers == 0 {
        return (Kind::Nodata, zone());
    }
    (Kind::Positive, Cow::Borrowed(q.qname.wire()))
}

/// Turns `response` into its slipped form: header and question only, TC
/// set, no records (no OPT either, as NSD sends it).
pub fn slip(response: &mut Vec<u8>) {
    if response.len() < HEADER {
        return;
    }
    let end = question_end(response).unwrap_or(HEADER);
    response.truncate(end);
    if end == HEADER {
        response[4..6].fill(0);
    }
    response[6..12].fill(0);
    response[2] |= (flags::TC >> 8) as u8;
}

#[cfg(test)]
mod tests;
