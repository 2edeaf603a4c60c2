//! `recvmmsg`/`sendmmsg` batches: one system call per batch of datagrams.

use super::*;

/// Receives up to [`BATCH`] datagrams per system call (`recvmmsg`), so a
/// busy server pays one receive call per batch rather than per datagram.
/// Buffers hold the largest datagram, and are allocated on first use.
pub(super) struct RecvBatch {
    pub(super) bufs: Vec<Box<[u8]>>,
    pub(super) lens: [usize; BATCH],
    pub(super) from: [Option<SocketAddr>; BATCH],
    pub(super) count: usize,
    pub(super) next: usize,
}

pub(super) const BATCH: usize = 16;
pub(super) const MAX_DATAGRAM: usize = 65536;

#[allow(unsafe_code)] // recvmmsg(2): see the SAFETY comments
impl RecvBatch {
    pub(super) fn new() -> RecvBatch {
        RecvBatch { bufs: Vec::new(), lens: [0; BATCH], from: [None; BATCH], count: 0, next: 0 }
    }

    /// Takes the next received datagram into `buf` (truncating).
    pub(super) fn take(&mut self, buf: &mut [u8]) -> Option<(usize, Option<SocketAddr>)> {
        if self.next == self.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let n = self.lens[i].min(buf.len());
        buf[..n].copy_from_slice(&self.bufs[i][..n]);
        Some((n, self.from[i]))
    }

    /// Whether received datagrams wait to be taken.
    pub(super) fn pending(&self) -> bool {
        self.next < self.count
    }

    /// One `recvmmsg` call on the non-blocking socket `fd`.
    pub(super) fn fill(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        if self.bufs.is_empty() {
            self.bufs = (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM].into_boxed_slice()).collect();
        }
        // SAFETY: all-zero bytes are a valid value for these plain C structs.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = self.bufs[i].len();
            msgs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH headers whose name and iovec pointers
        // point into `addrs`, `iovs` and `self.bufs`, all live and unaliased
        // for the duration of the call; the kernel writes only within the
        // lengths given.
        let n = unsafe {
            libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            self.lens[i] = msgs[i].msg_len as usize;
            self.from[i] = sockaddr_to_std(&addrs[i]);
        }
        self.count = n;
        self.next = 0;
        Ok(())
    }
}

/// Largest datagram queued for a batched send; larger ones go out at once
/// so their errors reach the caller.
pub(super) const MAX_QUEUED: usize = 4096;

/// Datagrams waiting for room in the socket buffer, at most; more are
/// dropped (and counted), as a full socket buffer drops them.
pub(super) const BACKLOG: usize = 256;

/// Datagrams queued for one `sendmmsg`. Errors of queued sends cannot reach
/// the caller, who has been told the send succeeded (as with any UDP loss):
/// they are logged at debug level.
///
/// When the socket buffer is full the rest stays queued, new datagrams join
/// it (up to [`BACKLOG`]) and the reactor flushes it once the socket is
/// writable again: nothing waits for room.
pub(super) struct SendQueue {
    pub(super) fd: std::cell::Cell<std::os::fd::RawFd>,
    pub(super) queued: std::cell::RefCell<Queued>,
    pub(super) writable: WritableHook,
    pub(super) me: std::rc::Weak<SendQueue>,
}

pub(super) struct Queued {
    pub(super) bufs: Vec<Vec<u8>>,
    pub(super) to: Vec<socket2::SockAddr>,
    pub(super) len: usize,
    /// A flush is already deferred to the reactor.
    pub(super) deferred: bool,
    /// The socket buffer was full: the reactor flushes when it has room.
    pub(super) blocked: bool,
    /// Datagrams dropped since the queue was last empty.
    pub(super) dropped: u64,
}

/// What [`SendQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Queued; a flush must be deferred to the reactor.
    NeedsFlush,
    /// Queued.
    Queued,
    /// The queue is full: dropped.
    Dropped,
}

/// The reactor's call when the socket is writable again.
pub(super) struct Writable(Rc<SendQueue>);

impl Deferred for Writable {
    fn flush(&self) {
        self.0.queued.borrow_mut().blocked = false;
        self.0.flush();
    }
}

impl SendQueue {
    pub(super) fn new(fd: std::os::fd::RawFd, writable: WritableHook) -> Rc<SendQueue> {
        Rc::new_cyclic(|me| SendQueue {
            fd: std::cell::Cell::new(fd),
            queued: std::cell::RefCell::new(Queued {
                bufs: Vec::new(),
                to: Vec::new(),
                len: 0,
                deferred: false,
                blocked: false,
                dropped: 0,
            }),
            writable,
            me: me.clone(),
        })
    }

    /// Queues a copy of `buf` for `to`, unless the queue is full.
    pub(super) fn push(&self, buf: &[u8], to: SocketAddr) -> Pushed {
        let mut q = self.queued.borrow_mut();
        if q.len >= BACKLOG {
            if q.dropped == 0 {
                log::warn!("UDP send buffer full: dropping datagrams until it drains");
            }
            q.dropped += 1;
            return Pushed::Dropped;
        }
        let i = q.len;
        if i == q.bufs.len() {
            q.bufs.push(Vec::with_capacity(512));
            q.to.push(socket2::SockAddr::from(to));
        } else {
            q.to[i] = socket2::SockAddr::from(to);
        }
        q.bufs[i].clear();
        q.bufs[i].extend_from_slice(buf);
        q.len += 1;
        if std::mem::replace(&mut q.deferred, true) {
            Pushed::Queued
        } else {
            Pushed::NeedsFlush
        }
    }

    pub(super) fn len(&self) -> usize {
        self.queued.borrow().len
    }

    /// The socket is closing: what is still queued is dropped, and nothing
    /// more is sent.
    pub(super) fn close(&self) {
        self.fd.set(-1);
        let mut q = self.queued.borrow_mut();
        if q.len > 0 {
            log::debug!("UDP socket closed with {} datagrams unsent", q.len);
        }
        q.len = 0;
    }
}

#[allow(unsafe_code)] // sendmmsg(2): see the SAFETY comment
impl Deferred for SendQueue {
    /// Sends what the socket buffer takes now. If it fills up, the rest
    /// stays queued and is sent when the reactor sees the socket writable.
    fn flush(&self) {
        let mut q = self.queued.borrow_mut();
        q.deferred = false;
        let fd = self.fd.get();
        if q.len == 0 || fd < 0 || q.blocked {
            return;
        }
        let n = q.len;
        // SAFETY: all-zero bytes are a valid value for these plain C structs.
        let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; n];
        // SAFETY: as above.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
        for i in 0..n {
            iovs[i].iov_base = q.bufs[i].as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = q.bufs[i].len();
            msgs[i].msg_hdr.msg_name = q.to[i].as_ptr() as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = q.to[i].len();
            msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: `msgs[sent..n]` are headers whose name and iovec
            // pointers point into `q.to`, `iovs` and `q.bufs`, which live and
            // are not touched until this call returns; the kernel only reads
            // them.
            let r = unsafe {
                libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, libc::MSG_DONTWAIT)
            };
            if r > 0 {
                sent += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    q.blocked = true;
                    if let Some(me) = self.me.upgrade() {
                        self.writable.flush_when_writable(Rc::new(Writable(me)));
                    }
                    break;
                }
                _ => {
                    // This datagram fails: skip it.
                    log::debug!("UDP send failed, datagram dropped: {e}");
                    sent += 1;
                }
            }
        }
        // Keep the unsent ones, in order, at the front.
        q.bufs[..n].rotate_left(sent);
        q.to[..n].rotate_left(sent);
        q.len = n - sent;
        if q.len == 0 && q.dropped > 0 {
            log::warn!("UDP send buffer drained; {} datagrams were dropped", q.dropped);
            q.dropped = 0;
        }
    }
}

#[allow(unsafe_code)] // reading the address the kernel wrote
pub(super) fn sockaddr_to_std(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // is smaller than and alignment-compatible with sockaddr_storage.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let port = u16::from_be(v6.sin6_port);
            let addr = std::net::SocketAddrV6::new(ip, port, u32::from_be(v6.sin6_flowinfo), v6.sin6_scope_id);
            Some(unmap(SocketAddr::V6(addr)))
        }
        _ => None,
    }
}
