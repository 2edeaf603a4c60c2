//! TCP listeners and streams over host sockets.

use super::*;

pub(super) struct HostListener {
    pub(super) reactor: Rc<Reactor>,
    pub(super) listener: MioListener,
    pub(super) reg: Registration,
    pub(super) addr: ListenAddr,
}

impl TcpListenerDriver for HostListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Accepted, Error>> {
        loop {
            let (mut stream, peer) = match self.reg.poll_io(cx, Direction::Read, || self.listener.accept()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(x)) => x,
                // The connection went away before we took it, or a transient
                // resource shortage: keep listening.
                Poll::Ready(Err(e)) => {
                    log::warn!("accept on {}: {e}", self.addr);
                    if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        continue;
                    }
                    return Poll::Ready(Err(net_error(e)));
                }
            };
            let _ = stream.set_nodelay(true);
            let reg = match self.reactor.register(&mut stream) {
                Ok(r) => r,
                Err(e) => return Poll::Ready(Err(net_error(e))),
            };
            TCP_ACCEPTED.inc();
            TCP_OPEN.inc();
            let s: Box<dyn TcpStreamDriver> = Box::new(HostTcp { stream, reg, connected: true });
            return Poll::Ready(Ok((s, unmap(peer))));
        }
    }

    fn local_addr(&self) -> ListenAddr {
        self.addr
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.reg.deregister(&mut self.listener);
    }
}

pub(super) struct HostTcp {
    pub(super) stream: MioStream,
    pub(super) reg: Registration,
    pub(super) connected: bool,
}

impl TcpStreamDriver for HostTcp {
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.connected {
            return Poll::Ready(Ok(()));
        }
        if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
            return Poll::Ready(Err(net_error(e)));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                let _ = self.stream.set_nodelay(true);
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.reg.set_waker(cx, Direction::Write);
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(net_error(e))),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Error>> {
        let s = &mut self.stream;
        self.reg.poll_io(cx, Direction::Read, || s.read(buf)).map_err(net_error)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, Error>> {
        let s = &mut self.stream;
        self.reg.poll_io(cx, Direction::Write, || s.write(buf)).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Error::Closed,
            _ => net_error(e),
        })
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Written data is already in the kernel, which delivers it.
        Poll::Ready(Ok(()))
    }

    fn shutdown_write(&mut self) -> Result<(), Error> {
        match self.stream.shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(net_error(e)),
            _ => Ok(()),
        }
    }

    fn abort(&mut self) {
        // A zero linger time makes close() send RST.
        let _ = SockRef::from(&self.stream).set_linger(Some(std::time::Duration::ZERO));
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok().map(unmap)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok().map(unmap)
    }
}

impl Drop for HostTcp {
    fn drop(&mut self) {
        TCP_OPEN.dec();
        self.reg.deregister(&mut self.stream);
    }
}
