//! The web unikernel's own certificate from an ACME CA (HTTP-01 or
//! TLS-ALPN-01): obtained at start
//! (or reused from `--acme-state`), renewed at a fraction of its lifetime
//! with retries and exponential backoff. A new certificate goes into the
//! TLS server's cell, so new handshakes use it without a restart; a failed
//! attempt leaves the working certificate in place.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use morgana::log::{info, warn};
use morgana::metrics::{Counter, Encoder, Gauge};
use morgana::Clock;
use morgana::{ArgError, Args, ClockDevice, Entropy, EntropyDevice, Files, Handle, Stack};
use morgana_acme::{chain_validity, x509, AccountKey, Answer, CertKey, ChallengeKind, Error, Https, Io, Issued};
use morgana_http::Challenges;
use morgana_tls::CertCell;

/// The `--acme-*` flags.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    directory: String,
    domains: Vec<String>,
    contact: Vec<String>,
    ca: Ca,
    state: Option<String>,
    renew_percent: u64,
    challenge: ChallengeKind,
}

impl AcmeConfig {
    /// The names the certificate is for.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Whether the CA validates over TLS (the HTTPS listeners must then
    /// offer `acme-tls/1`).
    pub fn tls_alpn(&self) -> bool {
        self.challenge == ChallengeKind::TlsAlpn01
    }
}

/// Where the roots for the ACME directory's HTTPS come from.
#[derive(Debug, Clone)]
enum Ca {
    /// `--acme-ca FILE` (hosted).
    File(String),
    /// Embedded at build time (`MORGANA_WEB_ACME_CA`).
    Embedded(&'static [u8]),
}

/// A fresh P-256 key.
fn new_cert_key(entropy: &mut EntropyDevice) -> Result<CertKey, Error> {
    loop {
        let mut s = [0u8; 32];
        entropy.fill(&mut s).map_err(|e| Error::new(format!("entropy: {e}")))?;
        if let Some(k) = CertKey::from_secret(&s) {
            return Ok(k);
        }
    }
}

fn wall(clock: &ClockDevice) -> i64 {
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

/// A Unix time as an HTTP date, for the log.
fn date(unix: i64) -> String {
    morgana_http::date::format(unix.max(0) as u64)
}

/// A DNS name a CA can issue for: letters, digits, hyphens and dots.
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Reads the `--acme-*` flags; `None` without `--acme-directory`.
pub fn config(args: &mut Args) -> Result<Option<AcmeConfig>, ArgError> {
    let directory: Option<String> = args
        .value("acme-directory", "get the HTTPS certificate from this ACME directory (https://ADDRESS[:PORT]/PATH)")?;
    let domains: Vec<String> = args.values("acme-domain", "name the ACME certificate is for (repeatable)")?;
    let email: Option<String> = args.value("acme-email", "contact address given to the ACME CA")?;
    let ca: Option<String> = args.value(
        "acme-ca",
        "PEM root certificates trusted for the ACME directory's HTTPS (hosted; default: those embedded at build time)",
    )?;
    let state: Option<String> =
        args.value("acme-state", "directory keeping the ACME account key and certificate across restarts (hosted)")?;
    let renew_percent: Option<u64> = args
        .value("acme-renew-at", "renew when this percentage of the certificate's lifetime has passed (default 67)")?;
    let challenge: Option<String> =
        args.value("acme-challenge", "how to prove the names: http-01 (port 80, default) or tls-alpn-01 (port 443)")?;
    let Some(directory) = directory else {
        let any = challenge.is_some() || renew_percent.is_some();
        if any || !domains.is_empty() || email.is_some() || ca.is_some() || state.is_some() {
            return Err(ArgError::Conflict("the --acme-* flags need --acme-directory".into()));
        }
        return Ok(None);
    };
    morgana_acme::transport::split_url(&directory).map_err(|e| ArgError::Conflict(format!("--acme-directory: {e}")))?;
    if domains.is_empty() {
        return Err(ArgError::Conflict("--acme-directory needs at least one --acme-domain".into()));
    }
    let domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    if let Some(bad) = domains.iter().find(|d| !valid_domain(d)) {
        return Err(ArgError::Conflict(format!("--acme-domain {bad:?} is not a DNS name")));
    }
    let ca = match (ca, crate::ACME_CA) {
        (Some(_), _) if !morgana::HOSTED => {
            return Err(ArgError::Conflict(
                "--acme-ca needs files, which VM images do not have: embed the roots with MORGANA_WEB_ACME_CA=PEM at build time".into(),
            ))
        }
        (Some(file), _) => Ca::File(file),
        (None, Some(pem)) => Ca::Embedded(pem),
        (None, None) => {
            return Err(ArgError::Conflict(
                "--acme-directory needs --acme-ca, or roots embedded at build time (MORGANA_WEB_ACME_CA=PEM)".into(),
            ))
        }
    };
    if state.is_some() && !morgana::HOSTED {
        return Err(ArgError::Conflict(
            "--acme-state needs files, which VM images do not have: the certificate is obtained at every boot".into(),
        ));
    }
    let renew_percent = renew_percent.unwrap_or(67);
    if !(1..=99).contains(&renew_percent) {
        return Err(ArgError::Conflict("--acme-renew-at is a percentage from 1 to 99".into()));
    }
    if email.as_deref().is_some_and(|e| !e.contains('@') || e.bytes().any(|b| b <= b' ')) {
        return Err(ArgError::Conflict("--acme-email is not an address".into()));
    }
    let challenge = match challenge.as_deref() {
        None | Some("http-01") => ChallengeKind::Http01,
        Some("tls-alpn-01") => ChallengeKind::TlsAlpn01,
        Some(other) => {
            return Err(ArgError::Conflict(format!("--acme-challenge {other:?}: http-01 or tls-alpn-01")));
        }
    };
    let contact = email.into_iter().map(|e| format!("mailto:{e}")).collect();
    Ok(Some(AcmeConfig { directory, domains, contact, ca, state, renew_percent, challenge }))
}

/// What the manager uses of the environment.
pub struct Manager {
    pub cfg: AcmeConfig,
    pub net: Stack,
    pub rt: Handle,
    pub clock: ClockDevice,
    pub entropy: EntropyDevice,
    pub files: Files,
    pub cell: CertCell,
    pub challenges: Challenges,
}

/// Orders placed, orders that failed, and the certificate in use.
static ORDERS: Counter = Counter::new();
static FAILURES: Counter = Counter::new();
static NOT_AFTER: Gauge = Gauge::new();

fn write_metrics(enc: &mut Encoder<'_>) {
    enc.counter("morgana_acme_orders_total", "ACME orders placed (first tries, renewals and retries).", ORDERS.get());
    enc.counter("morgana_acme_order_failures_total", "ACME orders that failed (each retried later).", FAILURES.get());
    enc.gauge(
        "morgana_acme_certificate_not_after_seconds",
        "Unix time the certificate from the CA expires (0 while there is none).",
        NOT_AFTER.get(),
    );
}

/// First retry after a failed attempt; doubled each time, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// [`Io`] for the ACME client: HTTPS, the executor's timers, and the
/// challenge answers: HTTP-01 on the plain-HTTP listeners, TLS-ALPN-01 in
/// the HTTPS listeners' certificate cell.
struct AppIo<'a> {
    https: &'a Https,
    rt: &'a Handle,
    challenges: &'a Challenges,
    cell: &'a CertCell,
    entropy: EntropyDevice,
    clock: ClockDevice,
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

impl Manager {
    fn path(&self, name: &str) -> Option<String> {
        self.cfg.state.as_ref().map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
    }

    fn secret(&mut self) -> Result<[u8; 32], Error> {
        let mut s = [0u8; 32];
        self.entropy.fill(&mut s).map_err(|e| Error::new(format!("entropy: {e}")))?;
        Ok(s)
    }

    /// The stored account key, or a new one (stored when there is a state
    /// directory).
    fn account_key(&mut self) -> Result<AccountKey, Error> {
        if let Some(path) = self.path("account.key") {
            if let Ok(pem) = self.files.read(&path) {
                return AccountKey::from_pem(&pem).map_err(|e| Error::new(format!("{path}: {e}")));
            }
        }
        let key = loop {
            if let Some(k) = AccountKey::from_secret(&self.secret()?) {
                break k;
            }
        };
        if let Some(path) = self.path("account.key") {
            self.files.write(&path, key.to_pem()?.as_bytes()).map_err(|e| Error::new(format!("{e}")))?;
            info!("ACME: new account key stored in {path}");
        }
        Ok(key)
    }

    /// The stored certificate, if there is one the TLS server accepts:
    /// its (notBefore, notAfter).
    fn load_stored(&self) -> Option<(i64, i64)> {
        let chain = self.files.read(&self.path("cert.pem")?).ok()?;
        let key = self.files.read(&self.path("cert.key")?).ok()?;
        let validity = chain_validity(&chain).ok()?;
        match self.cell.set_pem(chain.as_bytes(), key.as_bytes()) {
            Ok(()) => Some(validity),
            Err(e) => {
                warn!("ACME: the stored certificate is not usable ({e}); ordering a new one");
                None
            }
        }
    }

    fn store(&self, issued: &Issued) {
        let (Some(cert), Some(key)) = (self.path("cert.pem"), self.path("cert.key")) else { return };
        let r = self
            .files
            .write(&key, issued.key_pem.as_bytes())
            .and_then(|()| self.files.write(&cert, issued.chain_pem.as_bytes()));
        match r {
            Ok(()) => info!("ACME: certificate stored in {cert}"),
            Err(e) => warn!("ACME: cannot store the certificate: {e}"),
        }
    }

    fn now(&self) -> i64 {
        wall(&self.clock)
    }

    /// When to renew a certificate valid from `nb` to `na`.
    fn renew_at(&self, (nb, na): (i64, i64)) -> i64 {
        nb + (na - nb).max(0) * self.cfg.renew_percent as i64 / 100
    }

    /// One order: a fresh certificate key, the whole ACME flow, then the
    /// certificate into the cell (and the state directory).
    async fn obtain(&mut self, https: &Https, account: &AccountKey) -> Result<(i64, i64), Error> {
        let cert_key = new_cert_key(&mut self.entropy)?;
        let mut io = AppIo {
            https,
            rt: &self.rt,
            challenges: &self.challenges,
            cell: &self.cell,
            entropy: self.entropy,
            clock: self.clock,
        };
        let cfg = &self.cfg;
        let (dir, contact, domains) = (&cfg.directory, &cfg.contact, &cfg.domains);
        let issued = morgana_acme::issue(&mut io, account, dir, contact, domains, &cert_key, cfg.challenge).await?;
        self.cell
            .set_pem(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())
            .map_err(|e| Error::new(format!("the issued certificate: {e}")))?;
        self.store(&issued);
        Ok((issued.not_before, issued.not_after))
    }

    /// Reads the CA's roots and the account key (made and stored if new):
    /// what fails here stops the app at start, before it serves.
    pub fn prepare(&mut self) -> Result<(Https, AccountKey), Error> {
        let ca = match &self.cfg.ca {
            Ca::File(path) => {
                self.files.read(path).map(String::into_bytes).map_err(|e| Error::new(format!("--acme-ca {e}")))?
            }
            Ca::Embedded(pem) => pem.to_vec(),
        };
        let https = Https::new(self.net.clone(), self.rt.clone(), &ca, self.clock)
            .map_err(|e| Error::new(format!("--acme-ca: {e}")))?;
        let account = self.account_key().map_err(|e| Error::new(format!("account key: {e}")))?;
        Ok((https, account))
    }

    /// Runs forever: obtains, installs and renews the certificate.
    pub async fn run(mut self, https: Https, account: AccountKey) {
        if self.cfg.state.is_none() {
            let why = if morgana::HOSTED { "no --acme-state" } else { "VM images have no files" };
            info!("ACME: nothing is kept across restarts ({why}): the certificate is obtained anew at every start");
        }
        morgana::metrics::register("acme", write_metrics);
        let names = self.cfg.domains.join(", ");
        let mut current = self.load_stored();
        if let Some((_, na)) = current {
            info!("ACME: reusing the stored certificate for {names}, valid until {}", date(na));
        }
        loop {
            if let Some(validity) = current {
                NOT_AFTER.set(validity.1);
                let wait = (self.renew_at(validity) - self.now()).max(0) as u64;
                info!("ACME: certificate for {names} valid until {}; renewal in {wait} s", date(validity.1));
                self.rt.sleep(Duration::from_secs(wait)).await;
            }
            let mut backoff = FIRST_BACKOFF;
            let mut attempt = 1u32;
            current = loop {
                info!("ACME: ordering a certificate for {names} from {} (attempt {attempt})", self.cfg.directory);
                ORDERS.inc();
                match self.obtain(&https, &account).await {
                    Ok(v) => {
                        info!("ACME: new certificate for {names} in use for new connections");
                        break Some(v);
                    }
                    Err(e) => {
                        FAILURES.inc();
                        let keep = if current.is_some() { "; the current certificate stays" } else { "" };
                        warn!("ACME: attempt {attempt} failed: {e}; retrying in {} s{keep}", backoff.as_secs());
                        self.rt.sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        attempt += 1;
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_domain;

    #[test]
    fn domains() {
        assert!(valid_domain("www.example.test"));
        assert!(!valid_domain("-a.test"));
        assert!(!valid_domain("a..test"));
        assert!(!valid_domain("a test"));
        assert!(!valid_domain(""));
    }
}
