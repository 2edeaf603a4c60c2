//! The client side: TLS connections to servers whose chain ends at one of
//! the given roots.

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use morgana_devices::Clock;
use morgana_net::TcpStream;
use morgana_runtime::Handle;
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::{TlsError, TlsStream, WallClock};

/// A client TLS connection.
pub type TlsClientStream = TlsStream<UnbufferedClientConnection>;

/// Opens TLS connections that verify the server's certificate chain
/// against a fixed set of roots and its name.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl TlsConnector {
    /// A client trusting the PEM root certificates `roots_pem` (at least
    /// one), offering TLS 1.3 and 1.2 and ALPN `alpn`.
    pub fn new<C: Clock + Send + Sync + 'static>(
        roots_pem: &[u8],
        alpn: &[&[u8]],
        clock: C,
    ) -> Result<TlsConnector, TlsError> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(roots_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Config(alloc::format!("root certificates: {e:?}")))?;
        let mut roots = RootCertStore::empty();
        for c in certs {
            roots.add(c).map_err(|e| TlsError::Config(alloc::format!("root certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Config("no root certificate given".into()));
        }
        let provider = Arc::new(crate::provider::provider());
        let mut config = ClientConfig::builder_with_details(provider, Arc::new(WallClock(clock)))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsConnector { config: Arc::new(config) })
    }

    /// Runs the client handshake on `tcp` for `server` (a DNS name or an IP
    /// address, checked against the certificate), within `timeout`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        server: &str,
        rt: &Handle,
        timeout: Duration,
    ) -> Result<TlsClientStream, TlsError> {
        let name = ServerName::try_from(String::from(server))
            .map_err(|_| TlsError::Config(alloc::format!("not a server name: {server:?}")))?;
        let conn = UnbufferedClientConnection::new(self.config.clone(), name)?;
        TlsStream::new(conn, tcp).handshake_within(rt, timeout).await
    }
}
