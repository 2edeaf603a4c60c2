//! Serving DNS on the framework's sockets: UDP (with response rate
//! limiting), TCP with RFC 7766 framing (several queries per connection, an
//! idle timeout, a connection cap), and AXFR (RFC 5936) to allowed clients.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::{IpAddr, SocketAddr};
use core::str::FromStr;
use core::time::Duration;

use morgana_net::{Error, Slots, TcpListener, TcpStream, UdpSocket};
use morgana_runtime::Handle;

use crate::answer::{Transport, MAX_UDP};
use crate::clock::WallClock;
#[cfg(feature = "cookies")]
use crate::cookie::Secret;
use crate::cookie::{self, Outcome, Reply};
use crate::metrics::{self, Via};
use crate::rdata::type_name;
use crate::rrl::{self, Limiter, Verdict};
#[cfg(feature = "transfers")]
use crate::secondary::notify;
use crate::served::Served;
use crate::wire::{parse_query, Query, QueryError};
#[cfg(feature = "transfers")]
use crate::wire::{rtype, CLASS_IN};

/// An address or network, `192.0.2.0/24` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("'{a}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.parse().ok().filter(|p| *p <= max).ok_or_else(|| format!("bad prefix length '{p}'"))?,
        };
        // Clients are matched as IPv4 when IPv4-mapped; configure alike.
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(Network { addr: IpAddr::V4(v4), prefix: prefix - 96 });
            }
        }
        Ok(Network { addr, prefix })
    }
}

impl Network {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u32::from(v) as u128,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        let width = if ip.is_ipv4() { 32 } else { 128 };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let shift = width - self.prefix as u32;
        (bits(ip) >> shift) == (bits(self.addr) >> shift)
    }
}

/// Limits and access rules.
#[derive(Debug, Clone)]
pub struct Config {
    /// A TCP connection with no complete query for this long is closed.
    pub tcp_idle: Duration,
    /// Open TCP connections at most; more are closed at once.
    pub tcp_max_connections: usize,
    /// Who may transfer zones (nobody by default), and the TSIG keys.
    #[cfg(feature = "transfers")]
    pub axfr: crate::xfr::Access,
    /// Response rate limiting of UDP (TCP is never limited).
    pub rrl: rrl::Config,
    /// The secret of DNS cookies; `None`: COOKIE options are ignored.
    #[cfg(feature = "cookies")]
    pub cookies: Option<Secret>,
    /// The wall clock server cookies are stamped with (TSIG reads
    /// `axfr.clock`).
    pub clock: WallClock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp_idle: Duration::from_secs(10),
            tcp_max_connections: 128,
            #[cfg(feature = "transfers")]
            axfr: crate::xfr::Access::default(),
            rrl: rrl::Config::default(),
            #[cfg(feature = "cookies")]
            cookies: None,
            clock: WallClock::default(),
        }
    }
}

/// One line describing a query and its answer, for debug logs.
fn describe(peer: SocketAddr, proto: &str, query: &[u8], response: Option<&[u8]>, verdict: Verdict) -> String {
    let what = match parse_query(query) {
        Ok(q) => format!("{} {}", q.qname, type_name(q.qtype)),
        Err(_) => String::from("<malformed>"),
    };
    let limited = match verdict {
        Verdict::Send => "",
        Verdict::Slip => " (rate-limited: slipped)",
        Verdict::Drop => " (rate-limited: dropped)",
    };
    match response {
        Some(r) if r.len() >= 4 && verdict != Verdict::Drop => {
            let code = r[3] & 0xf;
            let tc = if r[2] & 0x02 != 0 { " TC" } else { "" };
            format!("{peer} {proto} {what} -> rcode {code}{tc}, {} bytes{limited}", r.len())
        }
        _ => format!("{peer} {proto} {what} -> dropped{limited}"),
    }
}

/// Seconds server cookies are stamped with: the wall clock's, else the
/// monotonic clock's (its cookies then hold at this server only, and only
/// until it restarts).
#[cfg(feature = "cookies")]
fn cookie_time(config: &Config, rt: &Handle) -> u32 {
    config.clock.now().unwrap_or_else(|| rt.now().as_nanos() / 1_000_000_000) as u32
}

/// What the query's COOKIE proves, and the option of the response; `None`
/// without one (or with cookies off).
#[cfg(feature = "cookies")]
fn judge_cookie(
    config: &Config,
    parsed: &Result<Query, QueryError>,
    peer: SocketAddr,
    rt: &Handle,
) -> Option<(Outcome, Reply)> {
    let secret = config.cookies.as_ref()?;
    let received = parsed.as_ref().ok()?.edns?.cookie?;
    let judged = secret.check(&received, peer.ip(), cookie_time(config, rt));
    metrics::cookie(judged.0);
    Some(judged)
}

/// Without the `cookies` feature the server makes no cookies: a query's
/// COOKIE option is ignored, as by a server that does not know it.
#[cfg(not(feature = "cookies"))]
fn judge_cookie(_: &Config, _: &Result<Query, QueryError>, _: SocketAddr, _: &Handle) -> Option<(Outcome, Reply)> {
    None
}

/// `response` signed as `query` was (TSIG), to at most `udp_limit` bytes
/// over UDP. Without the `transfers` feature there are no keys: unsigned.
fn sign(query: &[u8], response: Vec<u8>, config: &Config, udp_limit: Option<usize>) -> Vec<u8> {
    #[cfg(feature = "transfers")]
    return crate::xfr::sign_response(query, response, &config.axfr, udp_limit);
    #[cfg(not(feature = "transfers"))]
    {
        let _ = (query, config, udp_limit);
        response
    }
}

/// The rate limiter for UDP responses that `config` asks for (`None` when
/// its rate is 0), shared by every UDP socket of a server.
pub fn udp_limiter(config: &rrl::Config, seed: [u8; 16]) -> Option<Rc<RefCell<Limiter>>> {
    Limiter::new(config, seed).map(|l| Rc::new(RefCell::new(l)))
}

/// Answers queries on `socket` forever from what `served` holds, through
/// `limiter` if there is one (time from `rt`'s clock); answers to signed
/// queries are signed with `config`'s TSIG keys.
pub async fn serve_udp(
    mut socket: UdpSocket,
    served: Rc<Served>,
    limiter: Option<Rc<RefCell<Limiter>>>,
    config: Rc<Config>,
    rt: Handle,
) {
    metrics::register();
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("UDP receive: {e}");
                continue;
            }
        };
        let query = &buf[..n];
        #[cfg(feature = "transfers")]
        if notify::is_notify(query) {
            metrics::query(Via::Udp);
            if let Some(r) = notify::answer(&served, query, peer, &config.axfr) {
                let _ = socket.send_to(&r, peer).await;
            }
            continue;
        }
        let catalog = served.catalog();
        let parsed = parse_query(query);
        let cookie = judge_cookie(&config, &parsed, peer, &rt);
        let options = cookie.as_ref().map_or(&[][..], |(_, reply)| &reply[..]);
        let mut response = catalog.respond_with(&parsed, Transport::Udp, options);
        metrics::query(Via::Udp);
        if let Some(r) = &response {
            metrics::response(Via::Udp, r);
        }
        let mut verdict = Verdict::Send;
        // A valid server cookie proves the source address: no rate limit.
        let proven = cookie.is_some_and(|(o, _)| o == Outcome::Valid);
        if let (Some(r), Some(limiter), false) = (response.as_mut(), &limiter, proven) {
            let (kind, name) = rrl::classify(parsed.as_ref().ok(), r, &catalog);
            let now_ms = rt.now().as_nanos() / 1_000_000;
            let mut limiter = limiter.borrow_mut();
            verdict = limiter.check(now_ms, peer.ip(), kind, &name);
            if let (Some((Outcome::Invalid, reply)), Ok(q), true) = (&cookie, &parsed, verdict == Verdict::Slip) {
                // A stale or foreign server cookie over the limit: in place
                // of the truncated answer, BADCOOKIE with a fresh cookie (no
                // larger than the query but for 8 octets), so a real client
                // retries with it, unlimited. A dropped answer stays dropped:
                // forged cookies buy a flood no more reflection than none.
                *r = cookie::badcookie(q, reply);
                metrics::badcookie();
                verdict = Verdict::Send;
            } else if verdict == Verdict::Slip {
                rrl::slip(r);
            }
            if verdict != Verdict::Send {
                metrics::limited(verdict == Verdict::Slip);
            }
            let report = if verdict == Verdict::Send { None } else { limiter.report(now_ms) };
            if let Some((dropped, slipped)) = report {
                let (net, prefix) = rrl::network(peer.ip());
                let name = crate::name::to_text(&name);
                log::info!(
                    "rate limiting UDP: {dropped} responses dropped, {slipped} sent truncated since the last report; now {net}/{prefix} ({kind:?} {name})"
                );
            }
        }
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("{}", describe(peer, "udp", query, response.as_deref(), verdict));
        }
        if let (Some(r), false) = (response, verdict == Verdict::Drop) {
            let limit =
                parsed.as_ref().ok().and_then(|q| q.edns).map_or(512, |e| (e.udp_size as usize).clamp(512, MAX_UDP));
            let r = sign(query, r, &config, Some(limit));
            if let Err(e) = socket.send_to(&r, peer).await {
                log::debug!("UDP reply to {peer}: {e}");
            }
        }
    }
}

/// Heap one DNS-over-TCP connection needs, about: its task, a query and
/// an answer (3 KiB per idle connection measured hosted).
const TCP_CONNECTION_COST: usize = 8 * 1024;

/// Accepts DNS-over-TCP connections on `listener` forever.
pub async fn serve_tcp(mut listener: TcpListener, served: Rc<Served>, config: Rc<Config>, rt: Handle) {
    // At the cap the client that has waited longest (idle, or a query
    // trickling in) makes way for the newcomer.
    metrics::register();
    let slots =
        Slots::new(config.tcp_max_connections, rt.clone()).with_cost(TCP_CONNECTION_COST).with_metrics(&metrics::TCP);
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("TCP accept: {e}");
                continue;
            }
        };
        let Some(slot) = slots.admit().await else {
            log::debug!("{peer}: all {} TCP connections busy, closing", config.tcp_max_connections);
            stream.abort();
            continue;
        };
        stream.attach(slot);
        let (served, config, rt2) = (served.clone(), config.clone(), rt.clone());
        rt.spawn(async move {
            if let Err(e) = connection(stream, peer, &served, &config, &rt2).await {
                log::debug!("{peer}: TCP connection: {e}");
            }
        });
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<bool, Error> {
    let mut got = 0;
    while got < buf.len() {
        let n = stream.read(&mut buf[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(false) } else { Err(Error::ConnectionReset) };
        }
        got += n;
    }
    Ok(true)
}

pub(crate) async fn send(stream: &mut TcpStream, msg: &[u8]) -> Result<(), Error> {
    if msg.len() > u16::MAX as usize {
        return Err(Error::TooLarge); // cannot be framed
    }
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}

/// Reads one length-prefixed message into `buf`; `Ok(None)` when the client
/// has closed between messages.
pub(crate) async fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<usize>, Error> {
    let mut len = [0u8; 2];
    if !read_exact(stream, &mut len).await? {
        return Ok(None);
    }
    let len = u16::from_be_bytes(len) as usize;
    buf.resize(len, 0);
    if !read_exact(stream, &mut buf[..len]).await? {
        return Err(Error::ConnectionReset);
    }
    Ok(Some(len))
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    served: &Served,
    config: &Config,
    rt: &Handle,
) -> Result<(), Error> {
    // Each write gets the idle time too; each whole query must arrive within
    // it (a byte now and then does not keep a slot).
    stream.set_timeout(Some(config.tcp_idle));
    let mut buf = Vec::new();
    loop {
        let len = match rt.timeout(config.tcp_idle, read_frame(&mut stream, &mut buf)).await {
            Ok(Ok(Some(len))) => len,
            Ok(Ok(None)) => return stream.close().await, // the client is done
            Err(_) | Ok(Err(Error::TimedOut)) => {
                log::debug!("{peer}: TCP idle timeout");
                stream.abort();
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
        };
        let query = &buf[..len];
        metrics::query(Via::Tcp);
        #[cfg(feature = "transfers")]
        if notify::is_notify(query) {
            match notify::answer(served, query, peer, &config.axfr) {
                Some(r) => send(&mut stream, &r).await?,
                None => {
                    stream.abort();
                    return Ok(());
                }
            }
            continue;
        }
        let catalog = served.catalog();
        let parsed = parse_query(query);
        #[cfg(feature = "transfers")]
        if let Ok(q) = &parsed {
            let transfer = q.qtype == rtype::AXFR || q.qtype == rtype::IXFR;
            if transfer && q.edns.is_none_or(|e| e.version == 0) && q.qclass == CLASS_IN {
                crate::xfr::serve(&mut stream, peer, query, q, served, &config.axfr).await?;
                continue;
            }
        }
        let cookie = judge_cookie(config, &parsed, peer, rt);
        let options = cookie.as_ref().map_or(&[][..], |(_, reply)| &reply[..]);
        let response = catalog.respond_with(&parsed, Transport::Tcp, options);
        if let Some(r) = &response {
            metrics::response(Via::Tcp, r);
        }
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("{}", describe(peer, "tcp", query, response.as_deref(), Verdict::Send));
        }
        match response {
            Some(r) => send(&mut stream, &sign(query, r, config, None)).await?,
            None => {
                stream.abort();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n: Network = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        let one: Network = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("banana".parse::<Network>().is_err());
        let mapped: Network = "::ffff:192.0.2.0/120".parse().unwrap();
        assert!(mapped.contains("192.0.2.9".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
    }
}
