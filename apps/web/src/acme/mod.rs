//! The web unikernel's own certificate from an ACME CA (HTTP-01 or
//! TLS-ALPN-01): obtained at start
//! (or reused from `--acme-state`), renewed at a fraction of its lifetime
//! with retries and exponential backoff. A new certificate goes into the
//! TLS server's cell, so new handshakes use it without a restart; a failed
//! attempt leaves the working certificate in place.

mod flags;
mod io;

pub use flags::{config, AcmeConfig};
pub use io::temporary_certificate;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use morgana::log::{info, warn};
use morgana::metrics::{Counter, Encoder, Gauge};
use morgana::{ClockDevice, Entropy, EntropyDevice, Files, Handle, Stack};
use morgana_acme::{chain_validity, AccountKey, Error, Https, Issued};
use morgana_http::Challenges;
use morgana_tls::CertCell;

use flags::Ca;
use io::{new_cert_key, wall, AppIo};

/// A Unix time as an HTTP date, for the log.
fn date(unix: i64) -> String {
    morgana_http::date::format(unix.max(0) as u64)
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
