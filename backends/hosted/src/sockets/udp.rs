//! UDP sockets over host sockets, receiving and sending in batches.

use super::*;

pub(super) struct HostUdp {
    pub(super) udp: MioUdp,
    pub(super) reg: Registration,
    pub(super) reactor: Rc<Reactor>,
    pub(super) addr: ListenAddr,
    pub(super) dual: bool,
    pub(super) batch: RecvBatch,
    pub(super) out: Rc<SendQueue>,
}

impl UdpSocketDriver for HostUdp {
    fn poll_recv_from(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<(usize, SocketAddr), Error>> {
        use std::os::fd::AsRawFd;
        let fd = self.udp.as_raw_fd();
        loop {
            if let Some((n, from)) = self.batch.take(buf) {
                match from {
                    Some(from) => return Poll::Ready(Ok((n, from))),
                    None => continue, // an address family we cannot express
                }
            }
            // The batch is used up: the replies to it go out together.
            self.out.flush();
            let batch = &mut self.batch;
            match self.reg.poll_io(cx, Direction::Read, || batch.fill(fd)) {
                Poll::Ready(Ok(())) => continue,
                // ICMP errors for earlier sends surface here; they are not
                // this receive's failure.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(net_error(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_send_to(&mut self, cx: &mut Context<'_>, buf: &[u8], to: SocketAddr) -> Poll<Result<(), Error>> {
        let to = match to {
            SocketAddr::V4(a) if self.dual => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
            other => other,
        };
        // While received datagrams are still waiting to be read, this is a
        // reply in the middle of a batch: queue it and send the queue with
        // one sendmmsg when the batch is used up, the queue is full, or the
        // executor is about to sleep.
        // The reply to a batch's last datagram joins the queue and sends it.
        // Datagrams still queued because the socket buffer is full are
        // followed by the queue too (or by nothing, when it is full).
        if (self.batch.pending() || self.out.len() > 0) && buf.len() <= MAX_QUEUED {
            if self.out.push(buf, to) == Pushed::NeedsFlush {
                self.reactor.defer(self.out.clone());
            }
            if !self.batch.pending() || self.out.len() >= BATCH {
                self.out.flush();
            }
            return Poll::Ready(Ok(()));
        }
        self.out.flush(); // keep the order of sends
        if self.out.len() > 0 {
            // Queued datagrams wait for room: this one waits behind them.
            self.reg.set_waker(cx, Direction::Write);
            return Poll::Pending;
        }
        let u = &self.udp;
        self.reg.poll_io(cx, Direction::Write, || u.send_to(buf, to)).map(|r| match r {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(Error::TooLarge),
            Err(e) => Err(net_error(e)),
        })
    }

    fn local_addr(&self) -> ListenAddr {
        self.addr
    }
}

impl Drop for HostUdp {
    fn drop(&mut self) {
        self.out.flush();
        self.out.close();
        self.reg.deregister(&mut self.udp);
    }
}
