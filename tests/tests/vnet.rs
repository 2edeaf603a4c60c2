//! Two direct (smoltcp) stacks joined by an in-memory link, in one process,
//! with virtual time: bulk TCP byte-exact with and without injected loss and
//! reordering, UDP both ways, IPv4 and IPv6.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use morgana_net::direct::{self, Cidr, Config, Ipv4Mode, Ipv6Mode};
use morgana_net::{Error, Stack};
use morgana_runtime::{Executor, Handle};
use morgana_tests::client::pattern;
use morgana_tests::vtime::VirtualTime;
use morgana_vnet::{Faults, Switch};

const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn config(v4: Ipv4Addr, v6: Ipv6Addr) -> Config {
    Config {
        ipv4: Ipv4Mode::Static(Cidr { addr: v4, prefix: 24 }),
        ipv6: Ipv6Mode::Static(Cidr { addr: v6, prefix: 64 }),
        ..Config::default()
    }
}

/// Runs `test` with two stacks, A (10.0.0.1, fd00::1) and B (10.0.0.2,
/// fd00::2), on one link.
fn with_two_stacks<F, Fut>(faults: Faults, test: F)
where
    F: FnOnce(Handle, Stack, Stack) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(faults);
    let (a, _) = direct::start(link.port([2, 0, 0, 0, 0, 1]), config(A4, A6), [11; 32], &rt);
    let (b, _) = direct::start(link.port([2, 0, 0, 0, 0, 2]), config(B4, B6), [22; 32], &rt);
    exec.block_on(test(rt, a, b));
}

/// B sends `len` bytes to A over TCP; A checks them, sends them back and
/// closes; B checks the echo and the clean end of stream.
async fn bulk_transfer(rt: Handle, a: Stack, b: Stack, server: IpAddr, len: usize) {
    let data = Rc::new(pattern(len, 5));
    let mut listener = a.tcp_listen(7).unwrap();
    let expected = data.clone();
    let server_done = rt.spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut got = Vec::with_capacity(expected.len());
        let mut buf = vec![0u8; 8192];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == *expected, "server received {} bytes, not the {} sent", got.len(), expected.len());
        s.write_all(&got).await.unwrap();
        s.close().await.unwrap();
        peer
    });
    let mut c = b.tcp_connect(SocketAddr::new(server, 7), Duration::from_secs(5)).await.unwrap();
    c.set_timeout(Some(Duration::from_secs(120)));
    c.write_all(&data).await.unwrap();
    c.flush().await.unwrap();
    c.shutdown_write().unwrap();
    let mut back = Vec::with_capacity(len);
    let mut buf = vec![0u8; 8192];
    loop {
        let n = c.read(&mut buf).await.expect("read echo");
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == *data, "client got {} bytes back, not the {} sent", back.len(), data.len());
    let peer = server_done.await;
    assert_eq!(peer.ip(), c.local_addr().unwrap().ip());
}

#[test]
fn tcp_10_mib_ipv4() {
    with_two_stacks(Faults::default(), |rt, a, b| bulk_transfer(rt, a, b, A4.into(), 10 << 20));
}

#[test]
fn tcp_10_mib_ipv4_with_loss_and_reordering() {
    let faults = Faults { loss_ppm: 10_000, reorder_ppm: 20_000, seed: 7 };
    with_two_stacks(faults, |rt, a, b| bulk_transfer(rt, a, b, A4.into(), 10 << 20));
}

#[test]
fn tcp_10_mib_ipv6_with_loss_and_reordering() {
    let faults = Faults { loss_ppm: 5_000, reorder_ppm: 10_000, seed: 3 };
    with_two_stacks(faults, |rt, a, b| bulk_transfer(rt, a, b, A6.into(), 10 << 20));
}

async fn udp_both_ways(a: Stack, b: Stack, a_ip: IpAddr, b_ip: IpAddr) {
    let mut sa = a.udp_bind(5000).unwrap();
    let mut sb = b.udp_bind(6000).unwrap();
    for i in 0..100u64 {
        let msg = pattern(100 + i as usize * 10, i + 1);
        sb.send_to(&msg, SocketAddr::new(a_ip, 5000)).await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = sa.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&msg[..], SocketAddr::new(b_ip, 6000)));
        sa.send_to(&buf[..n], from).await.unwrap();
        let (n, from) = sb.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&msg[..], SocketAddr::new(a_ip, 5000)));
    }
}

#[test]
fn udp_both_ways_ipv4() {
    with_two_stacks(Faults::default(), |_, a, b| udp_both_ways(a, b, A4.into(), B4.into()));
}

#[test]
fn udp_both_ways_ipv6() {
    with_two_stacks(Faults::default(), |_, a, b| udp_both_ways(a, b, A6.into(), B6.into()));
}

#[test]
fn udp_oversized_datagram_is_refused() {
    with_two_stacks(Faults::default(), |_, _a, b| async move {
        let mut s = b.udp_bind(0).unwrap();
        let err = s.send_to(&[0u8; 1600], SocketAddr::new(A4.into(), 9)).await.unwrap_err();
        assert_eq!(err, Error::TooLarge);
    });
}

#[test]
fn tcp_connect_to_closed_port_is_refused() {
    with_two_stacks(Faults::default(), |_, _a, b| async move {
        let err = b.tcp_connect(SocketAddr::new(A4.into(), 81), Duration::from_secs(5)).await.err();
        assert_eq!(err, Some(Error::ConnectionRefused));
    });
}

#[test]
fn tcp_connect_to_silent_host_times_out() {
    with_two_stacks(Faults::default(), |_, _a, b| async move {
        let nobody = SocketAddr::new(Ipv4Addr::new(10, 0, 0, 99).into(), 7);
        let err = b.tcp_connect(nobody, Duration::from_secs(3)).await.err();
        assert_eq!(err, Some(Error::TimedOut));
    });
}

#[test]
fn listening_twice_on_a_port_is_addr_in_use() {
    with_two_stacks(Faults::default(), |_, a, _b| async move {
        let _l = a.tcp_listen(7).unwrap();
        assert_eq!(a.tcp_listen(7).err(), Some(Error::AddrInUse));
        let _u = a.udp_bind(7).unwrap();
        assert_eq!(a.udp_bind(7).err(), Some(Error::AddrInUse));
        let other: SocketAddr = "10.9.9.9:8".parse().unwrap();
        assert_eq!(a.tcp_listen(other).err(), Some(Error::AddrNotAvailable));
    });
}

#[test]
fn forty_simultaneous_connections() {
    with_two_stacks(Faults::default(), |rt, a, b| async move {
        let mut l = a.tcp_listen(7).unwrap();
        let served = Rc::new(RefCell::new(0));
        let count = served.clone();
        let rt2 = rt.clone();
        rt.spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let count = count.clone();
                rt2.spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await.unwrap();
                    s.write_all(&buf[..n]).await.unwrap();
                    s.close().await.unwrap();
                    *count.borrow_mut() += 1;
                });
            }
        });
        let mut clients = Vec::new();
        for i in 0..40u8 {
            let b = b.clone();
            clients.push(rt.spawn(async move {
                let mut c = b.tcp_connect(SocketAddr::new(A4.into(), 7), Duration::from_secs(30)).await.unwrap();
                c.write_all(&[i; 10]).await.unwrap();
                let mut buf = [0u8; 10];
                let mut got = 0;
                while got < 10 {
                    got += c.read(&mut buf[got..]).await.unwrap();
                }
                assert_eq!(buf, [i; 10]);
            }));
        }
        for c in clients {
            c.await;
        }
        // The server counts a connection once its close is acknowledged.
        for _ in 0..100 {
            if *served.borrow() == 40 {
                break;
            }
            rt.sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*served.borrow(), 40);
    });
}

#[test]
fn connections_beyond_the_accept_queue_are_refused_not_hung() {
    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let link = Switch::new(Faults::default());
    let small = Config { backlog: 4, ..config(A4, A6) };
    let (a, _) = direct::start(link.port([2, 0, 0, 0, 0, 1]), small, [11; 32], &rt);
    let (b, _) = direct::start(link.port([2, 0, 0, 0, 0, 2]), config(B4, B6), [22; 32], &rt);
    exec.block_on(async move {
        // Nobody accepts: four connections wait in the accept queue, the
        // other six are refused (or reset) at once rather than left hanging.
        let _l = a.tcp_listen(7).unwrap();
        let tries: Vec<_> = (0..10)
            .map(|_| {
                let (b, rt) = (b.clone(), rt.clone());
                rt.clone().spawn(async move {
                    let mut c = b.tcp_connect(SocketAddr::new(A4.into(), 7), Duration::from_secs(5)).await?;
                    let mut buf = [0u8; 1];
                    match rt.timeout(Duration::from_secs(3), c.read(&mut buf)).await {
                        Err(_) => Ok(c), // still open: waiting in the queue
                        Ok(Ok(0)) | Ok(Err(Error::ConnectionReset)) => Err(Error::ConnectionReset),
                        Ok(other) => panic!("unexpected read result {other:?}"),
                    }
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tries {
            match t.await {
                Ok(c) => held.push(c),
                Err(e) => assert!(matches!(e, Error::ConnectionRefused | Error::ConnectionReset), "{e:?}"),
            }
        }
        assert_eq!(held.len(), 4);
    });
}
