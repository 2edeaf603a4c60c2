//! TLS server streams for Morgana.
//!
//! rustls's unbuffered API (the one available without `std`) driven over
//! the framework's TCP streams: [`TlsAcceptor::accept`] runs the handshake
//! and returns a [`TlsStream`] that implements `embedded_io_async::Read` and
//! `Write`, so protocols (HTTP) run over it unchanged.
//!
//! Crypto: the `rustls-rustcrypto` provider (pure Rust, builds for
//! `x86_64-unknown-none`), pinned, with the RustCrypto SIMD back ends forced
//! to software. TLS 1.3 and 1.2, X25519/P-256/P-384 key exchange,
//! AES-GCM and ChaCha20-Poly1305, ECDSA, Ed25519 and RSA certificates.
//! Randomness comes from the platform's entropy source through `getrandom`
//! (the OS when hosted; the VM backend registers its device). Certificate
//! validity needs the wall clock, given as a [`Clock`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use morgana_devices::Clock;
use morgana_net::TcpStream;
use morgana_runtime::Handle;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;

/// Why a TLS operation failed.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate chain or key could not be used.
    Config(String),
    /// The peer violated the protocol, or a check (certificate, version,
    /// cipher) failed.
    Tls(rustls::Error),
    /// The TCP connection failed.
    Net(morgana_net::Error),
    /// The handshake did not finish in time.
    TimedOut,
    /// The connection is closed.
    Closed,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Config(m) => write!(f, "TLS configuration: {m}"),
            TlsError::Tls(e) => write!(f, "TLS: {e}"),
            TlsError::Net(e) => write!(f, "{e}"),
            TlsError::TimedOut => f.write_str("TLS handshake timed out"),
            TlsError::Closed => f.write_str("TLS connection closed"),
        }
    }
}

impl core::error::Error for TlsError {}

impl embedded_io::Error for TlsError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            TlsError::Net(e) => embedded_io::Error::kind(e),
            TlsError::TimedOut => embedded_io::ErrorKind::TimedOut,
            TlsError::Closed => embedded_io::ErrorKind::BrokenPipe,
            TlsError::Config(_) | TlsError::Tls(_) => embedded_io::ErrorKind::InvalidData,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Tls(e)
    }
}

impl From<morgana_net::Error> for TlsError {
    fn from(e: morgana_net::Error) -> Self {
        TlsError::Net(e)
    }
}

/// rustls's view of the wall clock.
struct WallClock<C>(C);

impl<C> fmt::Debug for WallClock<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WallClock")
    }
}

impl<C: Clock + Send + Sync> rustls::time_provider::TimeProvider for WallClock<C> {
    fn current_time(&self) -> Option<UnixTime> {
        self.0.wall().map(|w| UnixTime::since_unix_epoch(Duration::from_secs(w.unix_seconds())))
    }
}

/// Accepts TLS connections with one certificate chain.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

impl TlsAcceptor {
    /// A server for the PEM certificate chain (leaf first) and PEM private
    /// key (PKCS#8, SEC1 or PKCS#1), offering TLS 1.3 and 1.2 and ALPN
    /// `alpn` (e.g. `http/1.1`).
    pub fn new<C: Clock + Send + Sync + 'static>(
        chain_pem: &[u8],
        key_pem: &[u8],
        alpn: &[&[u8]],
        clock: C,
    ) -> Result<TlsAcceptor, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Config(alloc::format!("certificate chain: {e:?}")))?;
        if chain.is_empty() {
            return Err(TlsError::Config("no certificate in the chain file".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Config(alloc::format!("private key: {e:?}")))?;
        let provider = Arc::new(rustls_rustcrypto::provider());
        let mut config = ServerConfig::builder_with_details(provider, Arc::new(WallClock(clock)))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // The server's order of cipher suites wins over the client's, as
        // operators expect (the provider lists AES-GCM before ChaCha20).
        config.ignore_client_order = true;
        Ok(TlsAcceptor { config: Arc::new(config) })
    }

    /// Runs the server handshake on `tcp`, within `timeout`.
    pub async fn accept(&self, tcp: TcpStream, rt: &Handle, timeout: Duration) -> Result<TlsStream, TlsError> {
        let conn = UnbufferedServerConnection::new(self.config.clone())?;
        let mut s = TlsStream {
            conn,
            tcp,
            // Both grow as the connection needs them (a ClientHello fits in
            // the first); an idle or stalled handshake costs little.
            incoming: vec![0; INITIAL_INCOMING],
            in_len: 0,
            outgoing: Vec::new(),
            out_len: 0,
            out_sent: 0,
            plain: Vec::new(),
            plain_pos: 0,
            peer_closed: false,
        };
        match rt.timeout(timeout, s.handshake()).await {
            Ok(r) => r.map(|()| s),
            Err(_) => {
                s.tcp.abort();
                Err(TlsError::TimedOut)
            }
        }
    }
}

/// Most ciphertext buffered before the connection is dropped.
const MAX_INCOMING: usize = 256 * 1024;
/// The first receive buffer: a ClientHello fits.
const INITIAL_INCOMING: usize = 2 * 1024;
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

/// A TLS connection over TCP.
pub struct TlsStream {
    conn: UnbufferedServerConnection,
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

impl TlsStream {
    /// The negotiated ALPN protocol.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated protocol version, e.g. `TLSv1_3`.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// Processes buffered records until the connection needs I/O: encodes
    /// handshake data into `outgoing`, collects application data in `plain`.
    /// With `write`, encrypts it once the connection can take data.
    fn pump(&mut self, mut write: Option<&[u8]>) -> Result<(Next, usize), TlsError> {
        loop {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut self.incoming[..self.in_len]);
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
                    let again = self.conn.process_tls_records(&mut self.incoming[..self.in_len]);
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
                ConnectionState::ReadEarlyData(mut r) => {
                    while let Some(rec) = r.next_record() {
                        rec?; // early data is not accepted; drop it
                    }
                }
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
            if !self.conn.is_handshaking() {
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

    /// Encrypts and sends some of `data`; returns how much.
    pub async fn write(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if data.is_empty() {
            return Ok(0);
        }
        loop {
            let (next, n) = self.step(Some(data)).await?;
            self.flush_outgoing().await?;
            match next {
                Next::Ready if n > 0 => return Ok(n),
                Next::Closed => return Err(TlsError::Closed),
                _ => {
                    if !self.fill().await? {
                        return Err(TlsError::Closed);
                    }
                }
            }
        }
    }

    /// Sends close_notify and closes the TCP connection.
    pub async fn close(mut self) -> Result<(), TlsError> {
        // Finish anything pending, then queue close_notify once the
        // connection can send.
        for _ in 0..8 {
            let status = self.conn.process_tls_records(&mut self.incoming[..self.in_len]);
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

impl embedded_io::ErrorType for TlsStream {
    type Error = TlsError;
}

impl embedded_io_async::Read for TlsStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        TlsStream::read(self, buf).await
    }
}

impl embedded_io_async::Write for TlsStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, TlsError> {
        TlsStream::write(self, buf).await
    }

    async fn flush(&mut self) -> Result<(), TlsError> {
        self.flush_outgoing().await
    }
}
