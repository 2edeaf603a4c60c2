//! The server side: accepting TLS connections with a fixed certificate
//! chain, or with whatever a [`CertCell`] holds at each handshake.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use morgana_devices::Clock;
use morgana_net::TcpStream;
use morgana_runtime::Handle;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::sessions::SessionCache;
use crate::{provider, TlsError, TlsStream, WallClock};

/// Parses a PEM certificate chain (leaf first) and private key (PKCS#8,
/// SEC1 or PKCS#1) into rustls's form; where the provider can tell (ring),
/// a key that does not match the leaf certificate is refused.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = parse_pem(chain_pem, key_pem)?;
    CertifiedKey::from_der(chain, key, &provider::provider()).map_err(|e| TlsError::Config(e.to_string()))
}

/// A TLS-ALPN-01 challenge certificate and its key. Its critical
/// acmeIdentifier extension (RFC 8737 §3) is one webpki refuses to parse,
/// so the key-matches-certificate check is left out: the ACME client made
/// both.
fn challenge_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = parse_pem(chain_pem, key_pem)?;
    let key = provider::provider().key_provider.load_private_key(key).map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(CertifiedKey::new(chain, key))
}

type ChainAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn parse_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<ChainAndKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Config(alloc::format!("certificate chain: {e:?}")))?;
    if chain.is_empty() {
        return Err(TlsError::Config("no certificate in the chain".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Config(alloc::format!("private key: {e:?}")))?;
    Ok((chain, key))
}

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Most TLS-ALPN-01 challenge certificates held at once.
const MAX_CHALLENGES: usize = 256;

/// Most sessions the server keeps for resumption (about 1 MiB at most, see
/// `sessions::MAX_VALUE`; typically a few hundred bytes each).
const SESSION_CACHE_CAPACITY: usize = 256;

#[derive(Default)]
struct Certs {
    current: Option<Arc<CertifiedKey>>,
    /// TLS-ALPN-01 certificates by server name.
    challenges: BTreeMap<String, Arc<CertifiedKey>>,
}

/// The certificate new handshakes use, replaceable while connections run
/// (a renewed certificate takes effect at the next handshake), and the
/// TLS-ALPN-01 challenge certificates shown to a CA that asks for
/// `acme-tls/1`. Clones share the cell.
#[derive(Clone, Default)]
pub struct CertCell(Arc<spin::Mutex<Certs>>);

impl fmt::Debug for CertCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertCell({})", if self.is_set() { "set" } else { "empty" })
    }
}

impl CertCell {
    /// An empty cell: handshakes fail until a certificate is set.
    pub fn new() -> CertCell {
        CertCell::default()
    }

    /// Replaces the certificate for new handshakes.
    pub fn set(&self, key: CertifiedKey) {
        self.0.lock().current = Some(Arc::new(key));
    }

    /// Replaces the certificate with a PEM chain and key; on error the
    /// cell keeps what it had.
    pub fn set_pem(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        self.set(certified_key(chain_pem, key_pem)?);
        Ok(())
    }

    /// Whether a certificate is set.
    pub fn is_set(&self) -> bool {
        self.0.lock().current.is_some()
    }

    /// Shows this TLS-ALPN-01 certificate (PEM) to clients that ask for
    /// `acme-tls/1` with the server name `name`.
    pub fn set_challenge(&self, name: &str, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let key = Arc::new(challenge_key(chain_pem, key_pem)?);
        let mut certs = self.0.lock();
        if certs.challenges.len() >= MAX_CHALLENGES && !certs.challenges.contains_key(name) {
            return Err(TlsError::Config("too many TLS-ALPN-01 challenges at once".into()));
        }
        certs.challenges.insert(name.to_ascii_lowercase(), key);
        Ok(())
    }

    /// Stops answering TLS-ALPN-01 for `name`.
    pub fn remove_challenge(&self, name: &str) {
        self.0.lock().challenges.remove(&name.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for CertCell {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.0.lock();
        if hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN)) {
            // Only the challenge certificate, or no handshake (RFC 8737 §3).
            let name = hello.server_name()?.to_ascii_lowercase();
            return certs.challenges.get(&name).cloned();
        }
        certs.current.clone()
    }
}

/// Accepts TLS connections.
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
        let cell = CertCell::new();
        cell.set_pem(chain_pem, key_pem)?;
        Self::with_cell(cell, alpn, clock)
    }

    /// A server that uses whatever certificate `cell` holds when a
    /// handshake starts.
    pub fn with_cell<C: Clock + Send + Sync + 'static>(
        cell: CertCell,
        alpn: &[&[u8]],
        clock: C,
    ) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(provider::provider());
        let mut config = ServerConfig::builder_with_details(provider, Arc::new(WallClock(clock)))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(cell));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // The server's order of cipher suites wins over the client's, as
        // operators expect (`provider`: AES-GCM before ChaCha20).
        config.ignore_client_order = true;
        // Resumption: TLS 1.2 session IDs and, without a ticketer, TLS 1.3
        // tickets that name a cache entry; with one, stateless tickets.
        config.session_storage = Arc::new(SessionCache::new(SESSION_CACHE_CAPACITY));
        if let Some(ticketer) = provider::ticketer()? {
            config.ticketer = ticketer;
        }
        Ok(TlsAcceptor { config: Arc::new(config) })
    }

    /// Runs the server handshake on `tcp`, within `timeout`.
    pub async fn accept(&self, tcp: TcpStream, rt: &Handle, timeout: Duration) -> Result<TlsStream, TlsError> {
        let conn = UnbufferedServerConnection::new(self.config.clone())?;
        TlsStream::new(conn, tcp).handshake_within(rt, timeout).await
    }
}
