//! The direct stack against a hostile peer on an in-memory link, in virtual
//! time: a spoofed-source SYN flood, and the initial sequence numbers a
//! peer can observe.

use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use morgana_devices::{Net, RxToken, TxToken};
use morgana_net::direct::{self, Cidr, Config, Ipv4Mode, Ipv6Mode};
use morgana_runtime::{Executor, Handle};
use morgana_tests::frames::Tcp4;
use morgana_tests::vtime::VirtualTime;
use morgana_vnet::{Faults, Port, Switch};

const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ATTACKER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ATTACKER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

fn config(v4: Ipv4Addr, last: u16) -> Config {
    Config {
        ipv4: Ipv4Mode::Static(Cidr { addr: v4, prefix: 24 }),
        ipv6: Ipv6Mode::Static(Cidr { addr: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last), prefix: 64 }),
        ..Config::default()
    }
}

fn send(port: &mut Port, frame: &[u8]) {
    let mut cx = Context::from_waker(Waker::noop());
    let tx = port.transmit(&mut cx).expect("vnet always has a transmit slot");
    tx.consume(frame.len(), |b| b.copy_from_slice(frame));
}

/// Frames waiting at `port`, taken.
fn drain(port: &mut Port) -> Vec<Vec<u8>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = Vec::new();
    while let Some((rx, _)) = port.receive(&mut cx) {
        frames.push(rx.consume(|b| b.to_vec()));
    }
    frames
}

/// Serves a one-byte echo on port 7 of `stack`.
fn echo_server(rt: &Handle, stack: morgana_net::Stack) {
    let mut l = stack.tcp_listen(7).unwrap();
    let rt2 = rt.clone();
    rt.spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else { continue };
            rt2.spawn(async move {
                let mut b = [0u8; 1];
                if c.read(&mut b).await == Ok(1) {
                    let _ = c.write_all(&b).await;
                }
                let _ = c.close().await;
            });
        }
    });
}

/// A connection that completes and echoes a byte within `limit`.
async fn probe(rt: Handle, client: morgana_net::Stack, limit: Duration) -> Result<(), String> {
    let attempt = async {
        let mut c =
            client.tcp_connect(SocketAddr::new(A4.into(), 7), limit).await.map_err(|e| format!("connect: {e}"))?;
        c.write_all(b"x").await.map_err(|e| format!("write: {e}"))?;
        let mut b = [0u8; 1];
        match c.read(&mut b).await {
            Ok(1) if &b == b"x" => Ok(()),
            other => Err(format!("read: {other:?}")),
        }
    };
    rt.timeout(limit, attempt).await.map_err(|_| "timed out".to_string())?
}

#[test]
fn spoofed_syn_flood_does_not_starve_real_clients() {
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    let (a, server) = direct::start(link.port(A_MAC), config(A4, 1), [11; 32], &rt);
    let (b, _) = direct::start(link.port([2, 0, 0, 0, 0, 2]), config(B4, 2), [22; 32], &rt);
    let attacker = Rc::new(RefCell::new(link.port(ATTACKER_MAC)));
    const FLOOD_MS: u64 = 2_000;
    const SYNS_PER_MS: u32 = 50; // 50,000 SYN/s from random spoofed sources
    exec.block_on(async move {
        echo_server(&rt, a);
        let flood = {
            let (rt, attacker) = (rt.clone(), attacker.clone());
            rt.clone().spawn(async move {
                let mut x = 0x9e37_79b9_u32;
                for _ in 0..FLOOD_MS {
                    for _ in 0..SYNS_PER_MS {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let [p, q, r, s] = x.to_be_bytes();
                        let syn = Tcp4 {
                            src_mac: ATTACKER_MAC,
                            dst_mac: A_MAC,
                            src: (Ipv4Addr::new(198, 18 + (p & 1), q, r), 1024 + u16::from(s) * 200),
                            dst: (A4, 7),
                            seq: x,
                            ack: 0,
                            flags: 0x02,
                        };
                        send(&mut attacker.borrow_mut(), &syn.frame());
                    }
                    drain(&mut attacker.borrow_mut());
                    rt.sleep(Duration::from_millis(1)).await;
                }
            })
        };
        // Real clients during the flood, one every 20 ms.
        let mut during = Vec::new();
        for _ in 0..(FLOOD_MS / 20 - 5) {
            // No SYN retransmission needed (its timeout is 1 s).
            during.push(rt.spawn(probe(rt.clone(), b.clone(), Duration::from_millis(900))));
            rt.sleep(Duration::from_millis(20)).await;
        }
        let mut ok = 0;
        let n = during.len();
        for p in during {
            ok += p.await.is_ok() as usize;
        }
        flood.await;
        let stats = server.tcp_defence_stats();
        assert!(stats.syn_cookies_sent > 10_000, "the flood filled the SYN queue (cookies answered): {stats:?}");
        assert_eq!(ok, n, "real clients connected during the flood: {ok} of {n}");
        // After the flood: every client gets in at once.
        for i in 0..20 {
            let r = probe(rt.clone(), b.clone(), Duration::from_secs(1)).await;
            assert!(r.is_ok(), "client {i} after the flood: {r:?}, {:?}", server.tcp_defence_stats());
        }
    });
}

/// Sends a SYN from the attacker's own address and returns the initial
/// sequence number of the SYN-ACK it gets, then resets the handshake.
async fn observed_isn(rt: &Handle, attacker: &RefCell<Port>, src_port: u16, seq: u32) -> u32 {
    let isn = observed_isn_kept(rt, attacker, src_port, seq).await;
    let rst = Tcp4 {
        src_mac: ATTACKER_MAC,
        dst_mac: A_MAC,
        src: (ATTACKER4, src_port),
        dst: (A4, 7),
        seq: seq.wrapping_add(1),
        ack: 0,
        flags: 0x04,
    };
    send(&mut attacker.borrow_mut(), &rst.frame());
    isn
}

/// Sends a SYN from the attacker's own address and returns the initial
/// sequence number of the SYN-ACK it gets.
async fn observed_isn_kept(rt: &Handle, attacker: &RefCell<Port>, src_port: u16, seq: u32) -> u32 {
    let syn = Tcp4 {
        src_mac: ATTACKER_MAC,
        dst_mac: A_MAC,
        src: (ATTACKER4, src_port),
        dst: (A4, 7),
        seq,
        ack: 0,
        flags: 0x02,
    };
    drain(&mut attacker.borrow_mut());
    send(&mut attacker.borrow_mut(), &syn.frame());
    for _ in 0..100 {
        rt.sleep(Duration::from_millis(1)).await;
        let frames = drain(&mut attacker.borrow_mut());
        for f in frames {
            // IPv4 + TCP from A to us, SYN+ACK, to our port.
            let is_synack = f.len() >= 54
                && f[12..14] == [0x08, 0x00]
                && f[23] == 6
                && f[34 + 13] & 0x12 == 0x12
                && u16::from_be_bytes([f[36], f[37]]) == src_port;
            if is_synack {
                return u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
            }
        }
    }
    panic!("no SYN-ACK for source port {src_port}");
}

#[test]
fn initial_sequence_numbers_follow_rfc_6528() {
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    let (a, _) = direct::start(link.port(A_MAC), config(A4, 1), [11; 32], &rt);
    let attacker = RefCell::new(link.port(ATTACKER_MAC));
    exec.block_on(async move {
        echo_server(&rt, a);
        introduce(&rt, &attacker).await;

        let t0 = rt.now();
        let first = observed_isn(&rt, &attacker, 5000, 1000).await;
        let elapsed0 = rt.now() - t0;
        rt.sleep(Duration::from_secs(1)).await;
        let t1 = rt.now();
        let again = observed_isn(&rt, &attacker, 5000, 2000).await;
        let other = observed_isn(&rt, &attacker, 5001, 3000).await;
        // Same 4-tuple: only the 4-microsecond clock M moved in between.
        let ticks = ((t1 - t0).as_micros() / 4) as u32;
        let step = again.wrapping_sub(first);
        let slack = (elapsed0.as_micros() / 4 + 1000) as u32;
        assert!(step.abs_diff(ticks) <= slack, "same tuple: ISN moved {step}, the clock {ticks}");
        // Another source port: a different F, nowhere near the first.
        let near = other.wrapping_sub(again).min(again.wrapping_sub(other));
        assert!(near > 1_000_000, "another tuple's ISN is {near} from this one's");
    });
}

#[test]
fn router_advertisements_that_panicked_smoltcp_are_ignored() {
    use morgana_tests::frames::router_advertisement;
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    // No static IPv6 address: SLAAC is on, as by default.
    let slaac = Config { ipv6: Ipv6Mode::Slaac, ..config(A4, 1) };
    let (a, server) = direct::start(link.port(A_MAC), slaac, [11; 32], &rt);
    let (b, _) = direct::start(link.port([2, 0, 0, 0, 0, 2]), config(B4, 2), [22; 32], &rt);
    let mut attacker = link.port(ATTACKER_MAC);
    exec.block_on(async move {
        echo_server(&rt, a);
        let mut global = [0u8; 16];
        global[..2].copy_from_slice(&[0x20, 0x01]);
        let mut multicast = [0u8; 16];
        multicast[0] = 0xff;
        // A prefix length over 128, a multicast prefix: each used to panic.
        for (prefix, len) in [(global, 200), (multicast, 64), (global, 0), (global, 128)] {
            send(&mut attacker, &router_advertisement(ATTACKER_MAC, prefix, len));
            rt.sleep(Duration::from_millis(10)).await;
            assert!(probe(rt.clone(), b.clone(), Duration::from_secs(1)).await.is_ok(), "after prefix /{len}");
        }
        // A well-formed /64 is still taken up.
        send(&mut attacker, &router_advertisement(ATTACKER_MAC, global, 64));
        rt.sleep(Duration::from_millis(10)).await;
        let addrs = morgana_net::driver::StackDriver::addresses(&server);
        let from_prefix = |a: &std::net::IpAddr| matches!(a, std::net::IpAddr::V6(v6) if v6.segments()[0] == 0x2001);
        assert!(addrs.iter().any(|(a, _)| from_prefix(a)), "SLAAC address from the /64: {addrs:?}");
    });
}

#[test]
fn an_advertised_prefix_is_taken_up_without_waiting_for_another_frame() {
    use morgana_tests::frames::router_advertisement;
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    let slaac = Config { ipv6: Ipv6Mode::Slaac, ..config(A4, 1) };
    let (_a, server) = direct::start(link.port(A_MAC), slaac, [11; 32], &rt);
    let mut router = link.port(ATTACKER_MAC);
    exec.block_on(async move {
        rt.sleep(Duration::from_millis(100)).await;
        let mut prefix = [0u8; 16];
        prefix[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        send(&mut router, &router_advertisement(ATTACKER_MAC, prefix, 64));
        rt.sleep(Duration::from_millis(10)).await;
        let addrs = morgana_net::driver::StackDriver::addresses(&server);
        let from_prefix =
            |a: &std::net::IpAddr| matches!(a, std::net::IpAddr::V6(v6) if v6.segments()[..2] == [0x2001, 0xdb8]);
        assert!(addrs.iter().any(|(a, _)| from_prefix(a)), "no address from the advertised /64 yet: {addrs:?}");
    });
}

/// Frames `config` (on stack A, with B beside it) sends in 10 s during
/// which B exchanges TCP and UDP with A over IPv4 and a peer sends a
/// router advertisement: (IPv6 frames from A, IPv4 frames from A).
fn frames_from_a_in_10_s(a_config: Config, b_config: Config) -> (usize, usize) {
    use morgana_tests::frames::router_advertisement;
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    let mut watcher = link.port(ATTACKER_MAC);
    let ipv6_off = a_config.ipv6 == Ipv6Mode::Off;
    let (a, server) = direct::start(link.port(A_MAC), a_config, [11; 32], &rt);
    let (b, _) = direct::start(link.port([2, 0, 0, 0, 0, 2]), b_config, [22; 32], &rt);
    exec.block_on(async move {
        echo_server(&rt, a.clone());
        let mut ua = a.udp_bind(5000).unwrap();
        let mut ub = b.udp_bind(6000).unwrap();
        let (mut v6, mut v4) = (0, 0);
        let mut prefix = [0u8; 16];
        prefix[..2].copy_from_slice(&[0x20, 0x01]);
        for tenth in 0..100 {
            if tenth == 20 {
                send(&mut watcher, &router_advertisement(ATTACKER_MAC, prefix, 64));
            }
            if tenth % 10 == 5 {
                assert_eq!(probe(rt.clone(), b.clone(), Duration::from_secs(1)).await, Ok(()), "TCP at {tenth}/10 s");
                ub.send_to(b"hello", SocketAddr::new(A4.into(), 5000)).await.unwrap();
                let mut buf = [0u8; 16];
                let (n, from) = ua.recv_from(&mut buf).await.unwrap();
                assert_eq!((&buf[..n], from), (&b"hello"[..], SocketAddr::new(B4.into(), 6000)));
                ua.send_to(b"back", from).await.unwrap();
                let (n, _) = ub.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"back");
            }
            rt.sleep(Duration::from_millis(100)).await;
            for f in drain(&mut watcher) {
                if f[6..12] == A_MAC {
                    match [f[12], f[13]] {
                        [0x86, 0xdd] => v6 += 1,
                        [0x08, 0x00] => v4 += 1,
                        _ => {}
                    }
                }
            }
        }
        let addrs = morgana_net::driver::StackDriver::addresses(&server);
        if ipv6_off {
            assert!(addrs.iter().all(|(a, _)| a.is_ipv4()), "an IPv6 address with IPv6 off: {addrs:?}");
        }
        (v6, v4)
    })
}

/// With `--ipv6=off` the stack sends no IPv6 frame at all (no router
/// solicitation, no neighbour discovery, no SLAAC from an advertisement)
/// while IPv4 TCP and UDP work; by default (SLAAC) the same run shows IPv6
/// frames, so the watcher would see them.
#[test]
fn with_ipv6_off_no_ipv6_frame_goes_out() {
    let off = |v4, last| Config { ipv6: Ipv6Mode::Off, ..config(v4, last) };
    let (v6, v4) = frames_from_a_in_10_s(off(A4, 1), off(B4, 2));
    assert_eq!(v6, 0, "IPv6 frames from a stack with IPv6 off");
    assert!(v4 >= 40, "only {v4} IPv4 frames: did the exchanges run?");
    let slaac = |v4, last| Config { ipv6: Ipv6Mode::Slaac, ..config(v4, last) };
    let (v6, _) = frames_from_a_in_10_s(slaac(A4, 1), slaac(B4, 2));
    assert!(v6 > 0, "no IPv6 frame from a stack doing SLAAC");
}

/// With SLAAC on and no router answering its solicitations, an idle stack
/// sleeps: the fuzzer found it polling every 200 µs for good once the last
/// router solicitation had gone (smoltcp kept that deadline, in the past).
#[test]
fn an_idle_stack_without_a_router_sleeps() {
    let clock = Rc::new(VirtualTime::default());
    let exec = Executor::new(clock.clone());
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    let slaac = Config { ipv6: Ipv6Mode::Slaac, ..config(A4, 1) };
    let (_a, _server) = direct::start(link.port(A_MAC), slaac, [11; 32], &rt);
    exec.block_on(async move { rt.sleep(Duration::from_secs(120)).await });
    assert!(clock.waits() < 200, "{} wakeups in 120 s of an idle stack", clock.waits());
}

#[test]
fn a_handshake_answered_with_a_cookie_completes_seconds_later() {
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    // One bucket of eight: a few spoofed SYNs fill it.
    let small = Config { syn_backlog: 8, ..config(A4, 1) };
    let (a, server) = direct::start(link.port(A_MAC), small, [11; 32], &rt);
    let attacker = RefCell::new(link.port(ATTACKER_MAC));
    exec.block_on(async move {
        echo_server(&rt, a);
        introduce(&rt, &attacker).await;
        let flood = |from: u32, to: u32| {
            for n in from..to {
                let syn = Tcp4 {
                    src_mac: ATTACKER_MAC,
                    dst_mac: A_MAC,
                    src: (Ipv4Addr::new(198, 18, (n >> 8) as u8, n as u8), 2000),
                    dst: (A4, 7),
                    seq: n,
                    ack: 0,
                    flags: 0x02,
                };
                send(&mut attacker.borrow_mut(), &syn.frame());
            }
        };
        flood(0, 20);
        rt.sleep(Duration::from_millis(10)).await;
        let isn = observed_isn_kept(&rt, &attacker, 6000, 500).await;
        assert_eq!(server.tcp_defence_stats().syn_cookies_sent, 13, "the bucket was full for 12 spoofed SYNs and ours");
        // The flood goes on, and the ACK with the first data comes after
        // any stored handshake would have expired: the cookie rebuilds it.
        flood(20, 300);
        rt.sleep(Duration::from_secs(6)).await;
        flood(300, 600);
        rt.sleep(Duration::from_millis(10)).await;
        let data = Tcp4 {
            src_mac: ATTACKER_MAC,
            dst_mac: A_MAC,
            src: (ATTACKER4, 6000),
            dst: (A4, 7),
            seq: 501,
            ack: isn.wrapping_add(1),
            flags: 0x18,
        };
        drain(&mut attacker.borrow_mut());
        send(&mut attacker.borrow_mut(), &data.frame_with(b"x"));
        let mut echoed = false;
        for _ in 0..100 {
            rt.sleep(Duration::from_millis(1)).await;
            let frames = drain(&mut attacker.borrow_mut());
            echoed |= frames.iter().any(|f| {
                f.len() == 55 && u16::from_be_bytes([f[36], f[37]]) == 6000 && f[54] == b'x' && f[47] & 0x04 == 0
            });
            if echoed {
                break;
            }
        }
        let stats = server.tcp_defence_stats();
        assert!(echoed, "no echo of the data sent with the cookie's ACK: {stats:?}");
        assert_eq!(stats.syn_cookies_completed, 1, "{stats:?}");
    });
}

/// Introduces the attacker's own address to A (an ARP request), so A can
/// answer it.
async fn introduce(rt: &Handle, attacker: &RefCell<Port>) {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&ATTACKER_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&ATTACKER_MAC);
    arp.extend_from_slice(&ATTACKER4.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&A4.octets());
    send(&mut attacker.borrow_mut(), &arp);
    rt.sleep(Duration::from_millis(10)).await;
}
