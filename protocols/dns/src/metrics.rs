//! The DNS server's counters: queries per transport, responses by rcode,
//! rate limiting, AXFR and TCP connections. One relaxed add per event;
//! written in the Prometheus text format only when scraped.

use morgana_net::SlotMetrics;

#[cfg(feature = "cookies")]
use crate::cookie::Outcome;
use morgana_runtime::metrics::{self, Counter, Encoder, Kind};

/// Transports, in label order.
const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
/// Rcodes with their own label; any other is "other" (BADVERS included:
/// its upper bits live in the OPT record).
const RCODES: [&str; 8] = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "NOTAUTH", "other"];

struct Dns {
    queries: [Counter; 2],
    responses: [[Counter; 8]; 2],
    rrl_dropped: Counter,
    rrl_slipped: Counter,
    axfr: [Counter; 2],
    /// By [`Outcome`]: client cookie only, valid, invalid.
    cookies: [Counter; 3],
    badcookie: Counter,
}

static DNS: Dns = Dns {
    queries: [const { Counter::new() }; 2],
    responses: [const { [const { Counter::new() }; 8] }; 2],
    rrl_dropped: Counter::new(),
    rrl_slipped: Counter::new(),
    axfr: [const { Counter::new() }; 2],
    cookies: [const { Counter::new() }; 3],
    badcookie: Counter::new(),
};

/// DNS-over-TCP connections (all listeners).
pub(crate) static TCP: SlotMetrics = SlotMetrics::new();

/// Which transport.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    Udp = 0,
    Tcp = 1,
}

/// Adds the DNS metrics to what a metrics endpoint serves.
pub(crate) fn register() {
    metrics::register("dns", write);
}

/// A query arrived.
#[inline]
pub(crate) fn query(via: Via) {
    DNS.queries[via as usize].inc();
}

/// A response was built (before rate limiting).
#[inline]
pub(crate) fn response(via: Via, response: &[u8]) {
    let rcode = response.get(3).map_or(7, |b| match b & 0xf {
        c @ 0..=5 => c as usize,
        9 => 6,
        _ => 7,
    });
    DNS.responses[via as usize][rcode].inc();
}

/// Rate limiting dropped (`false`) or slipped (`true`) a UDP response.
#[inline]
pub(crate) fn limited(slipped: bool) {
    if slipped { &DNS.rrl_slipped } else { &DNS.rrl_dropped }.inc();
}

/// A query carried a COOKIE option, judged so.
#[inline]
#[cfg(feature = "cookies")]
pub(crate) fn cookie(outcome: Outcome) {
    DNS.cookies[outcome as usize].inc();
}

/// A BADCOOKIE answer went out in place of a rate-limited one.
#[inline]
pub(crate) fn badcookie() {
    DNS.badcookie.inc();
}

/// An AXFR request, allowed or refused.
#[cfg(feature = "transfers")]
pub(crate) fn axfr(allowed: bool) {
    DNS.axfr[usize::from(!allowed)].inc();
}

fn write(enc: &mut Encoder<'_>) {
    let name = "morgana_dns_queries_total";
    enc.family(name, Kind::Counter, "DNS queries received, by transport (AXFR included).");
    for (t, c) in TRANSPORTS.iter().zip(&DNS.queries) {
        enc.sample(name, &[("transport", t)], c.get());
    }
    let name = "morgana_dns_responses_total";
    enc.family(
        name,
        Kind::Counter,
        "DNS responses built, by transport and rcode, before rate limiting (AXFR not included).",
    );
    for (t, row) in TRANSPORTS.iter().zip(&DNS.responses) {
        for (r, c) in RCODES.iter().zip(row) {
            enc.sample(name, &[("transport", t), ("rcode", r)], c.get());
        }
    }
    enc.counter("morgana_dns_rrl_dropped_total", "UDP responses dropped by rate limiting.", DNS.rrl_dropped.get());
    enc.counter(
        "morgana_dns_rrl_slipped_total",
        "UDP responses over the rate limit sent truncated (TC) instead.",
        DNS.rrl_slipped.get(),
    );
    enc.labelled(
        "morgana_dns_axfr_total",
        "Zone transfer requests, allowed or refused.",
        "result",
        &[("allowed", &DNS.axfr[0]), ("refused", &DNS.axfr[1])],
    );
    enc.labelled(
        "morgana_dns_cookies_total",
        "Queries with a DNS cookie, by what their server cookie was.",
        "server_cookie",
        &[("none", &DNS.cookies[0]), ("valid", &DNS.cookies[1]), ("invalid", &DNS.cookies[2])],
    );
    enc.counter(
        "morgana_dns_badcookie_total",
        "BADCOOKIE answers sent in place of rate-limited UDP responses.",
        DNS.badcookie.get(),
    );
    TCP.write(enc, "morgana_dns_tcp", "DNS-over-TCP");
}
