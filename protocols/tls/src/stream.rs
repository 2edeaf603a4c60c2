//! A TLS connection over TCP, for either side: rustls's unbuffered
//! state machine driven with the framework's TCP stream.

use alloc::vec::Vec;
use core::time::Duration;

use morgana_net::TcpStream;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, ReadEarlyData, UnbufferedStatus};

use crate::TlsError;

/// rustls's unbuffered server or client connection.
pub trait Conn {
    /// rustls's per-side connection data.
    type Data;
    /// `process_tls_records` of this side.
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// Drops early data (only a server sees it; it is never accepted).
    fn drop_early_data(r: ReadEarlyData<'_, '_, Self::Data>) -> Result<(), rustls::Error>;
    /// Whether the handshake is still running.
    fn handshaking(&self) -> bool;
    /// The negotiated ALPN protocol.
    fn alpn(&self) -> Option<&[u8]>;
    /// The negotiated protocol version.
    fn version(&self) -> Option<rustls::ProtocolVersion>;
}

impl Conn for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn drop_early_data(mut r: ReadEarlyData<'_, '_, Self::Data>) -> Result<(), rustls::Error> {
        while let Some(rec) = r.next_record() {
            rec?;
        }
        Ok(())
    }
    fn handshaking(&self) -> bool {
        self.is_handshaking()
    }
    fn alpn(&self) -> Option<&[u8]> {
        self.alpn_protocol()
    }
    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.protocol_version()
    }
}

impl Conn for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn drop_early_data(_: ReadEarlyData<'_, '_, Self::Data>) -> Result<(), rustls::Error> {
        Ok(()) // a client is never sent early data
    }
    fn handshaking(&self) -> bool {
        self.is_handshaking()
    }
    fn alpn(&self) -> Option<&[u8]> {
        self.alpn_protocol()
    }
    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.protocol_version()
    }
}

/// Most ciphertext buffered before the connection is dropped.
const MAX_INCOMING: usize = 256 * 1024;
/// The first receive buffer: a ClientHello fits.
const INITIAL_INCOMING: usize = 2 * 1024;
/// Queued ciphertext that `write` sends without waiting for `flush`.
const SEND_AT: usize = 16 * 1024;
/// Room for an alert or close_notify record.
const SMALL_RECORD: usize = 256;

/// Makes `buf` at least `used + more` long.
fn reserve(buf: &mut Vec<u8>, used: usize, more: usize) {
    if buf.len() < used + more {
        buf.resize(used + more, 0);
    }
}

/// What the connection needs next.
enum Next {
    /// More bytes from the peer.
    Read,
    /// Application data may be written.
    Ready,
    /// Both sides closed.
    Closed,
}

/// A TLS connection over TCP: a server's by default, a client's with
/// `TlsStream<UnbufferedClientConnection>`.
pub struct TlsStream<C: Conn = UnbufferedServerConnection> {
    conn: C,
    tcp: TcpStream,
    incoming: Vec<u8>,
    in_len: usize,
    outgoing: Vec<u8>,
    out_len: usize,
    /// How much of `outgoing[..out_len]` has been sent (a write cancelled by
    /// a timeout resumes here rather than resending).
    out_sent: usize,
    plain: Vec<u8>,
    plain_pos: usize,
    peer_closed: bool,
}

impl<C: Conn> TlsStream<C> {
    /// A stream whose handshake has not run yet.
    pub(crate) fn new(conn: C, tcp: TcpStream) -> Self {
        TlsStream {
            conn,
            tcp,
            // Both grow as the connection needs them (a ClientHello fits in
            // the first); an idle or stalled handshake costs little.
            incoming: alloc::vec![0; INITIAL_INCOMING],
            in_len: 0,
            outgoing: Vec::new(),
            out_len: 0,
            out_sent: 0,
            plain: Vec::new(),
            plain_pos: 0,
            peer_closed: false,
        }
    }

    /// Runs the handshake within `timeout` (the TCP stream is aborted when
    /// it runs out).
    pub(crate) async fn handshake_within(
        mut self,
        rt: &morgana_runtime::Handle,
        timeout: Duration,
    ) -> Result<Self, TlsError> {
        match rt.timeout(timeout, self.handshake()).await {
            Ok(r) => r.map(|()| self),
            Err(_) => {
                self.tcp.abort();
                Err(TlsError::TimedOut)
            }
        }
    }

    /// The negotiated ALPN protocol.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn()
    }

    /// The negotiated protocol version, e.g. `TLSv1_3`.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.version()
    }

    /// Processes buffered records until the connection needs I/O: encodes
    /// handshake data into `outgoing`, collects application data in `plain`.
    /// With `write`, encrypts it once the connection can take data.
    fn pump(&mut self, mut write: Option<&[u8]>) -> Result<(Next, usize), TlsError> {
        loop {
            let UnbufferedStatus { discard, state } = self.conn.process(&mut self.incoming[..self.in_len]);
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    // rustls queues a fatal alert: encode it so the caller's
                    // flush tells the peer why. (The discard applies first,
                    // and the same buffer must be passed again.)
                    if discard > 0 {
                        self.incoming.copy_within(discard..self.in_len, 0);
                        self.in_len -= discard;
                    }
                    let again = self.conn.process(&mut self.incoming[..self.in_len]);
                    if let Ok(ConnectionState::EncodeTlsData(mut enc)) = again.state {
                        reserve(&mut self.outgoing, self.out_len, SMALL_RECORD);
                        if let Ok(n) = enc.encode(&mut self.outgoing[self.out_len..]) {
                            self.out_len += n;
                        }
                    }
                    return Err(e.into());
                }
            };
            let mut result = None;
            match state {
                ConnectionState::EncodeTlsData(mut e) => loop {
                    match e.encode(&mut self.outgoing[self.out_len..]) {
                        Ok(n) => {
                            self.out_len += n;
                            break;
                        }
                        Err(EncodeError::InsufficientSize(s)) => {
                            let need = self.out_len + s.required_size;
                            self.outgoing.resize(need, 0);
                        }
                        Err(EncodeError::AlreadyEncoded) => break,
                    }
                },
                ConnectionState::TransmitTlsData(t) => {
                    // Sent by the caller before it next waits for input.
                    t.done();
                }
                ConnectionState::BlockedHandshake => result = Some((Next::Read, 0)),
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec?;
                        debug_assert_eq!(rec.discard, 0, "rustls 0.23.46 never asks for a record discard");
                        self.plain.extend_from_slice(rec.payload);
                    }
                }
                ConnectionState::ReadEarlyData(r) => C::drop_early_data(r)?,
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => result = Some((Next::Closed, 0)),
                ConnectionState::WriteTraffic(mut w) => {
                    let mut written = 0;
                    if let Some(data) = write.take() {
                        let n = data.len().min(16 * 1024);
                        loop {
                            match w.encrypt(&data[..n], &mut self.outgoing[self.out_len..]) {
                                Ok(k) => {
                                    self.out_len += k;
                                    written = n;
                                    break;
                                }
                                Err(EncryptError::InsufficientSize(s)) => {
                                    let need = self.out_len + s.required_size;
                                    self.outgoing.resize(need, 0);
                                }
                                Err(e) => return Err(TlsError::Config(alloc::format!("{e:?}"))),
                            }
                        }
                    }
                    result = Some((Next::Ready, written));
                }
                _ => result = Some((Next::Read, 0)),
            }
            if discard > 0 {
                self.incoming.copy_within(discard..self.in_len, 0);
                self.in_len -= discard;
            }
            if let Some(r) = result {
                return Ok(r);
            }
        }
    }

    async fn flush_outgoing(&mut self) -> Result<(), TlsError> {
        while self.out_sent < self.out_len {
            let n = self.tcp.write(&self.outgoing[self.out_sent..self.out_len]).await?;
            self.out_sent += n;
        }
        self.out_len = 0;
        self.out_sent = 0;
        Ok(())
    }

    /// Runs `pump`, sending any alert it queued when it fails.
    async fn step(&mut self, write: Option<&[u8]>) -> Result<(Next, usize), TlsError> {
        match self.pump(write) {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = self.flush_outgoing().await;
                Err(e)
            }
        }
    }

    /// Reads more ciphertext; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, TlsError> {
        if self.in_len == self.incoming.len() {
            // rustls needs at most a record plus a handshake message
            // (about 80 KiB); anything far beyond is a misbehaving peer.
            if self.incoming.len() >= MAX_INCOMING {
                return Err(TlsError::Closed);
            }
            self.incoming.resize((self.incoming.len() * 2).min(MAX_INCOMING), 0);
        }
        let n = self.tcp.read(&mut self.incoming[self.in_len..]).await?;
        self.in_len += n;
        Ok(n > 0)
    }

    async fn handshake(&mut self) -> Result<(), TlsError> {
        loop {
            let (next, _) = self.step(None).await?;
            self.flush_outgoing().await?;
            if !self.conn.handshaking() {
                return Ok(());
            }
            match next {
                Next::Closed => return Err(TlsError::Closed),
                Next::Read | Next::Ready => {
                    if !self.fill().await? {
                        return Err(TlsError::Closed);
                    }
                }
            }
        }
    }

    /// Reads decrypted data; `Ok(0)` at the end of the peer's data.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        loop {
            if self.plain_pos < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.plain_pos);
                buf[..n].copy_from_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
                self.plain_pos += n;
                if self.plain_pos == self.plain.len() {
                    self.plain.clear();
                    self.plain_pos = 0;
                }
                return Ok(n);
            }
            if self.peer_closed {
                return Ok(0);
            }
            let (next, _) = self.step(None).await?;
            self.flush_outgoing().await?;
            if self.plain_pos < self.plain.len() {
                continue;
            }
            match next {
                Next::Closed => return Ok(0),
                _ if self.peer_closed => return Ok(0),
                _ => {
                    if !self.fill().await? {
                        return Ok(0); // TCP closed without close_notify
                    }
                }
            }
        }
    }

    /// Encrypts some of `data` and queues it; returns how much. Queued
    /// records are sent once about a record's worth has built up, at
    /// `flush`, and before a read waits for the peer.
    pub async fn write(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if data.is_empty() {
            return Ok(0);
        }
        loop {
            let (next, n) = self.step(Some(data)).await?;
            if matches!(next, Next::Ready) && n > 0 {
                // Records wait for `flush` (or a read) until a full record's
                // worth is queued: an HTTP head and a small body leave in
                // one send.
                if self.out_len - self.out_sent >= SEND_AT {
                    self.flush_outgoing().await?;
                }
                return Ok(n);
            }
            self.flush_outgoing().await?;
            match next {
                Next::Closed => return Err(TlsError::Closed),
                _ => {
                    if !self.fill().await? {
                        return Err(TlsError::Closed);
                    }
                }
            }
        }
    }

    /// Sends every queued record.
    pub async fn flush(&mut self) -> Result<(), TlsError> {
        self.flush_outgoing().await
    }

    /// Sends close_notify and closes the TCP connection.
    pub async fn close(mut self) -> Result<(), TlsError> {
        // Finish anything pending, then queue close_notify once the
        // connection can send.
        for _ in 0..8 {
            let status = self.conn.process(&mut self.incoming[..self.in_len]);
            let discard = status.discard;
            let done = match status.state {
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let need = self.out_len + 64;
                    if self.outgoing.len() < need {
                        self.outgoing.resize(need, 0);
                    }
                    reserve(&mut self.outgoing, self.out_len, SMALL_RECORD);
                    if let Ok(n) = w.queue_close_notify(&mut self.outgoing[self.out_len..]) {
                        self.out_len += n;
                    }
                    true
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    false
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    reserve(&mut self.outgoing, self.out_len, SMALL_RECORD);
                    if let Ok(n) = e.encode(&mut self.outgoing[self.out_len..]) {
                        self.out_len += n;
                    }
                    false
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(Ok(_)) = r.next_record() {}
                    false
                }
                _ => true,
            };
            if discard > 0 {
                self.incoming.copy_within(discard..self.in_len, 0);
                self.in_len -= discard;
            }
            if done {
                break;
            }
        }
        self.flush_outgoing().await?;
        self.tcp.close().await?;
        Ok(())
    }

    /// Sets the timeout of the underlying TCP reads and writes.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.tcp.set_timeout(timeout);
    }
}

impl<C: Conn> embedded_io::ErrorType for TlsStream<C> {
    type Error = TlsError;
}

impl<C: Conn> embedded_io_async::Read for TlsStream<C> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        TlsStream::read(self, buf).await
    }
}

impl<C: Conn> embedded_io_async::Write for TlsStream<C> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, TlsError> {
        TlsStream::write(self, buf).await
    }

    async fn flush(&mut self) -> Result<(), TlsError> {
        TlsStream::flush(self).await
    }
}
