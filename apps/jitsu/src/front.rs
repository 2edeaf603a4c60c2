//! The DNS front: answers from the zones as the DNS app does, except that
//! an A (or ANY) query for a unikernel's name waits until that unikernel
//! is up (booting it if it is stopped) and gets SERVFAIL if it cannot
//! boot. Waiting queries never hold up the others.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use morgana::log::{self as log, debug, info, warn};
use morgana::{Handle, Slots, TcpListener, TcpStream, UdpSocket};
use morgana_dns::answer::MAX_UDP;
use morgana_dns::rrl::{self, Limiter, Verdict};
use morgana_dns::wire::{flags, parse_query, rcode, rtype, Query, Writer, CLASS_ANY, CLASS_IN};
use morgana_dns::{Catalog, Transport};

use crate::registry::{Outcome, Registry};

/// How often a waiting query looks at its boot.
const POLL: Duration = Duration::from_millis(10);

/// UDP queries parked while unikernels boot, at most; beyond that a query
/// for a booting name is dropped (its client retries), so a flood cannot
/// grow the list without bound.
const MAX_WAITING: usize = 1024;
/// A TCP connection with no complete query for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Open TCP connections at most (the DNS app's default); at the cap the
/// one that has waited longest for its client makes way.
const TCP_MAX: usize = 128;

/// What to do with a query.
enum Next {
    /// Answer from the zones now.
    Answer,
    /// Wait for boot `attempt` of unikernel `unit`.
    Wait { unit: usize, attempt: u64 },
    /// SERVFAIL now.
    Fail,
}

fn next(reg: &RefCell<Registry>, parsed: Option<&Query>) -> Next {
    let Some(q) = parsed else { return Next::Answer };
    let boots = matches!(q.qtype, rtype::A | rtype::ANY) && matches!(q.qclass, CLASS_IN | CLASS_ANY);
    let mut reg = reg.borrow_mut();
    let Some(unit) = reg.find(&q.qname).filter(|_| boots) else { return Next::Answer };
    match reg.demand(unit) {
        Ok(None) => Next::Answer,
        Ok(Some(attempt)) => Next::Wait { unit, attempt },
        Err(_) => Next::Fail,
    }
}

fn servfail(q: &Query) -> Vec<u8> {
    let mut w = Writer::new(
        q.id,
        flags::QR | flags::AA | if q.rd { flags::RD } else { 0 },
        Some((&q.qname_raw, q.qtype, q.qclass)),
    );
    w.set_rcode(rcode::SERVFAIL);
    if q.edns.is_some() {
        w.opt(MAX_UDP as u16, 0, false);
    }
    w.finish()
}

/// The answer to `query` once its unikernel (if any) is up or has failed.
async fn answer(
    reg: &RefCell<Registry>,
    catalog: &Catalog,
    query: &[u8],
    transport: Transport,
    rt: &Handle,
) -> Option<Vec<u8>> {
    let parsed = parse_query(query);
    match next(reg, parsed.as_ref().ok()) {
        Next::Answer => catalog.respond(&parsed, transport),
        Next::Fail => parsed.as_ref().ok().map(servfail),
        Next::Wait { unit, attempt } => loop {
            rt.sleep(POLL).await;
            match reg.borrow_mut().outcome(unit, attempt) {
                Outcome::Pending => continue,
                Outcome::Up => break catalog.respond(&parsed, transport),
                Outcome::Failed => break parsed.as_ref().ok().map(servfail),
            }
        },
    }
}

/// A UDP query waiting for a boot.
struct Waiting {
    peer: SocketAddr,
    query: Vec<u8>,
    unit: usize,
    attempt: u64,
}

/// Serves UDP on `socket` forever. One task owns the socket: queries that
/// wait for a boot are kept here and answered when it ends.
pub async fn serve_udp(
    mut socket: UdpSocket,
    catalog: Rc<Catalog>,
    reg: Rc<RefCell<Registry>>,
    limiter: Option<Rc<RefCell<Limiter>>>,
    rt: Handle,
) {
    let mut buf = vec![0u8; 4096];
    let mut waiting: Vec<Waiting> = Vec::new();
    loop {
        let wait = if waiting.is_empty() { Duration::from_secs(1) } else { POLL };
        let mut replies: Vec<(SocketAddr, Vec<u8>, Vec<u8>)> = Vec::new();
        match rt.timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, peer))) => {
                let query = &buf[..n];
                let parsed = parse_query(query);
                if let (Ok(q), true) = (parsed.as_ref(), log::log_enabled!(log::Level::Debug)) {
                    debug!("{peer} udp {} type {}", q.qname, q.qtype);
                }
                match next(&reg, parsed.as_ref().ok()) {
                    Next::Answer => {
                        replies.extend(catalog.respond(&parsed, Transport::Udp).map(|r| (peer, r, query.to_vec())))
                    }
                    Next::Fail => replies.extend(parsed.as_ref().ok().map(|q| (peer, servfail(q), query.to_vec()))),
                    Next::Wait { unit, attempt } if waiting.len() < MAX_WAITING => {
                        waiting.push(Waiting { peer, query: query.to_vec(), unit, attempt })
                    }
                    Next::Wait { .. } => debug!("{peer} udp: {MAX_WAITING} queries already wait for boots; dropped"),
                }
            }
            Ok(Err(e)) => warn!("UDP receive: {e}"),
            Err(_) => {}
        }
        let mut i = 0;
        while i < waiting.len() {
            let w = &waiting[i];
            let outcome = reg.borrow_mut().outcome(w.unit, w.attempt);
            if outcome == Outcome::Pending {
                i += 1;
                continue;
            }
            let w = waiting.swap_remove(i);
            let parsed = parse_query(&w.query);
            let reply = match outcome {
                Outcome::Up => catalog.respond(&parsed, Transport::Udp),
                _ => parsed.as_ref().ok().map(servfail),
            };
            replies.extend(reply.map(|r| (w.peer, r, w.query)));
        }
        for (peer, mut reply, query) in replies {
            if limited(&mut reply, &query, peer, &catalog, limiter.as_deref(), &rt) {
                continue;
            }
            match socket.send_to(&reply, peer).await {
                Ok(()) => debug!("{peer} udp: rcode {}, {} bytes", reply.get(3).map_or(0, |b| b & 0xf), reply.len()),
                Err(e) => debug!("{peer} udp: reply not sent: {e}"),
            }
        }
    }
}

/// Response rate limiting as the DNS app does it: whether to drop `reply`
/// (it may be truncated instead).
fn limited(
    reply: &mut Vec<u8>,
    query: &[u8],
    peer: SocketAddr,
    catalog: &Catalog,
    limiter: Option<&RefCell<Limiter>>,
    rt: &Handle,
) -> bool {
    let Some(limiter) = limiter else { return false };
    let parsed = parse_query(query).ok();
    let (kind, name) = rrl::classify(parsed.as_ref(), reply, catalog);
    let now_ms = rt.now().as_nanos() / 1_000_000;
    let mut limiter = limiter.borrow_mut();
    let verdict = limiter.check(now_ms, peer.ip(), kind, &name);
    if verdict == Verdict::Slip {
        rrl::slip(reply);
    }
    if verdict != Verdict::Send {
        if let Some((dropped, slipped)) = limiter.report(now_ms) {
            info!("rate limiting UDP: {dropped} responses dropped, {slipped} sent truncated since the last report");
        }
    }
    verdict == Verdict::Drop
}

/// Accepts DNS-over-TCP connections forever, one task each.
pub async fn serve_tcp(mut listener: TcpListener, catalog: Rc<Catalog>, reg: Rc<RefCell<Registry>>, rt: Handle) {
    let slots = Slots::new(TCP_MAX, rt.clone());
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("TCP accept: {e}");
                continue;
            }
        };
        let Some(slot) = slots.admit().await else {
            debug!("{peer}: all {TCP_MAX} TCP connections busy, closing");
            stream.abort();
            continue;
        };
        stream.attach(slot);
        let (catalog, reg, rt2) = (catalog.clone(), reg.clone(), rt.clone());
        rt.spawn(async move {
            if let Err(e) = connection(stream, &catalog, &reg, &rt2).await {
                debug!("{peer}: TCP connection: {e}");
            }
        });
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<bool, morgana::net::Error> {
    let mut got = 0;
    while got < buf.len() {
        let n = stream.read(&mut buf[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(false) } else { Err(morgana::net::Error::ConnectionReset) };
        }
        got += n;
    }
    Ok(true)
}

async fn connection(
    mut stream: TcpStream,
    catalog: &Catalog,
    reg: &RefCell<Registry>,
    rt: &Handle,
) -> Result<(), morgana::net::Error> {
    stream.set_timeout(Some(TCP_IDLE));
    loop {
        let mut len = [0u8; 2];
        if !read_exact(&mut stream, &mut len).await? {
            return stream.close().await;
        }
        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
        if !read_exact(&mut stream, &mut query).await? {
            return Err(morgana::net::Error::ConnectionReset);
        }
        let Some(reply) = answer(reg, catalog, &query, Transport::Tcp, rt).await else {
            stream.abort();
            return Ok(());
        };
        let Ok(len) = u16::try_from(reply.len()) else { return Err(morgana::net::Error::TooLarge) };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}
