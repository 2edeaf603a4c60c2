//! Any bytes as what a TLS client sends, to the server side of rustls with
//! the rustls-rustcrypto provider, through the unbuffered API that
//! `morgana-tls` uses: nothing may panic. Hardening the alpha provider.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError};
use rustls::ServerConfig;

/// Certificates are not checked on the server side here; any time will do.
#[derive(Debug)]
struct FixedTime;

impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        Some(rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)))
    }
}

fn config() -> Arc<ServerConfig> {
    static C: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let chain =
            CertificateDer::pem_slice_iter(include_bytes!("../tls/cert.pem")).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../tls/key.pem")).unwrap();
        let mut cfg = ServerConfig::builder_with_details(Arc::new(rustls_rustcrypto::provider()), Arc::new(FixedTime))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut conn) = UnbufferedServerConnection::new(config()) else { return };
    let mut incoming = data.to_vec();
    let mut len = incoming.len();
    let mut out = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        let status = conn.process_tls_records(&mut incoming[..len]);
        let discard = status.discard;
        let done = match status.state {
            Err(_) => true,
            Ok(ConnectionState::EncodeTlsData(mut e)) => {
                matches!(e.encode(&mut out), Err(EncodeError::InsufficientSize(_)));
                false
            }
            Ok(ConnectionState::TransmitTlsData(t)) => {
                t.done();
                false
            }
            Ok(ConnectionState::ReadTraffic(mut r)) => {
                while let Some(Ok(_)) = r.next_record() {}
                false
            }
            Ok(_) => true,
        };
        incoming.copy_within(discard..len, 0);
        len -= discard;
        if done {
            break;
        }
    }
});
