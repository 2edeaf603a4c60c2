//! What the ACME client is given: HTTPS to the CA, the executor's timers,
//! and where challenge answers go; and the certificate keys it needs.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use morgana::Clock;
use morgana::{ClockDevice, Entropy, EntropyDevice, Handle};
use morgana_acme::{x509, Answer, CertKey, ChallengeKind, Error, Https, Io};
use morgana_http::Challenges;
use morgana_tls::CertCell;

use super::AcmeConfig;

/// A fresh P-256 key.
pub(super) fn new_cert_key(entropy: &mut EntropyDevice) -> Result<CertKey, Error> {
    loop {
        let mut s = [0u8; 32];
        entropy.fill(&mut s).map_err(|e| Error::new(format!("entropy: {e}")))?;
        if let Some(k) = CertKey::from_secret(&s) {
            return Ok(k);
        }
    }
}

pub(super) fn wall(clock: &ClockDevice) -> i64 {
    clock.wall().map_or(0, |w| w.unix_seconds() as i64)
}

/// A self-signed certificate for the names, served until the CA's
/// arrives: (chain PEM, key PEM).
pub fn temporary_certificate(
    cfg: &AcmeConfig,
    entropy: &mut EntropyDevice,
    clock: &ClockDevice,
) -> Result<(String, String), Error> {
    let key = new_cert_key(entropy)?;
    Ok((x509::temporary(&key, &cfg.domains, wall(clock), 7), key.to_pem()?))
}

/// [`Io`] for the ACME client: HTTPS, the executor's timers, and the
/// challenge answers: HTTP-01 on the plain-HTTP listeners, TLS-ALPN-01 in
/// the HTTPS listeners' certificate cell.
pub(super) struct AppIo<'a> {
    pub(super) https: &'a Https,
    pub(super) rt: &'a Handle,
    pub(super) challenges: &'a Challenges,
    pub(super) cell: &'a CertCell,
    pub(super) entropy: EntropyDevice,
    pub(super) clock: ClockDevice,
}

impl Io for AppIo<'_> {
    async fn request(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<morgana_acme::http::Response, Error> {
        self.https.request(method, url, body).await
    }
    async fn sleep(&mut self, d: Duration) {
        self.rt.sleep(d).await;
    }
    fn publish(&mut self, answer: &Answer) -> Result<(), Error> {
        match answer.kind {
            ChallengeKind::Http01 => self.challenges.publish(&answer.token, &answer.key_authorization),
            ChallengeKind::TlsAlpn01 => {
                let key = new_cert_key(&mut self.entropy)?;
                let cert = x509::tls_alpn01(&key, &answer.domain, &answer.key_authorization, wall(&self.clock))?;
                self.cell
                    .set_challenge(&answer.domain, cert.as_bytes(), key.to_pem()?.as_bytes())
                    .map_err(|e| Error::new(format!("TLS-ALPN-01 certificate: {e}")))?;
            }
        }
        Ok(())
    }
    fn withdraw(&mut self, answer: &Answer) {
        match answer.kind {
            ChallengeKind::Http01 => self.challenges.withdraw(&answer.token),
            ChallengeKind::TlsAlpn01 => self.cell.remove_challenge(&answer.domain),
        }
    }
}
