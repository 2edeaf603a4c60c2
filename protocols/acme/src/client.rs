//! The ACME conversation (RFC 8555 §7): account, order, HTTP-01
//! authorizations, finalization and download, over any [`Io`].

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use serde::de::DeserializeOwned;

use crate::csr::{pem_certificates, CertKey};
use crate::http::Response;
use crate::jose::{b64, AccountKey};
use crate::msg::{
    token_is_valid, Authorization, Directory, Finalize, Identifier, NewAccount, NewOrder, Order, Problem,
};
use crate::{der, Error};

/// How to prove control of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// HTTP-01 (RFC 8555 §8.3): an answer on port 80.
    Http01,
    /// TLS-ALPN-01 (RFC 8737): a certificate on port 443 for `acme-tls/1`.
    TlsAlpn01,
}

impl ChallengeKind {
    /// The challenge type's name in ACME.
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// An answer to publish while the CA validates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Which challenge.
    pub kind: ChallengeKind,
    /// The name being validated.
    pub domain: String,
    /// The challenge token (base64url).
    pub token: String,
    /// `token.thumbprint`.
    pub key_authorization: String,
}

/// What the client needs from its surroundings.
// The executor is single-threaded: no `Send` bound on these futures.
#[allow(async_fn_in_trait)]
pub trait Io {
    /// One HTTPS request to `url`; a body is sent as `application/jose+json`.
    async fn request(&mut self, method: &str, url: &str, body: Option<&[u8]>) -> Result<Response, Error>;
    /// Waits (between polls).
    async fn sleep(&mut self, duration: Duration);
    /// Starts answering a challenge; an error fails the authorization.
    fn publish(&mut self, answer: &Answer) -> Result<(), Error>;
    /// Stops answering it.
    fn withdraw(&mut self, answer: &Answer);
}

/// A certificate, as issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The chain, leaf first, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The leaf's notBefore, Unix seconds.
    pub not_before: i64,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
}

/// Reads a PEM chain's leaf validity: (notBefore, notAfter).
pub fn chain_validity(chain_pem: &str) -> Result<(i64, i64), Error> {
    let certs = pem_certificates(chain_pem)?;
    der::validity(&certs[0]).ok_or_else(|| Error::new("certificate: cannot read its validity"))
}

/// Retries of one request rejected for its nonce.
const BAD_NONCE_RETRIES: usize = 5;
/// Polls of one order or authorization before giving up.
const MAX_POLLS: usize = 60;

/// Obtains a certificate for `domains` from the CA at `directory`, with
/// the account of `account` (created if new), proving control over each
/// name with the challenge `kind`. `contact` are `mailto:` URLs.
pub async fn issue<I: Io>(
    io: &mut I,
    account: &AccountKey,
    directory: &str,
    contact: &[String],
    domains: &[String],
    cert_key: &CertKey,
    kind: ChallengeKind,
) -> Result<Issued, Error> {
    let dir: Directory = json(&io.request("GET", directory, None).await?, "directory")?;
    let mut s = Session { io, key: account, dir, nonce: None, kid: None, published: Vec::new(), kind };
    let r = s.run(contact, domains, cert_key).await;
    for answer in core::mem::take(&mut s.published) {
        s.io.withdraw(&answer);
    }
    r
}

struct Session<'a, I> {
    io: &'a mut I,
    key: &'a AccountKey,
    dir: Directory,
    nonce: Option<String>,
    kid: Option<String>,
    published: Vec<Answer>,
    kind: ChallengeKind,
}

impl<I: Io> Session<'_, I> {
    async fn run(&mut self, contact: &[String], domains: &[String], cert_key: &CertKey) -> Result<Issued, Error> {
        let new_account = self.dir.new_account.clone();
        let body = to_json(&NewAccount { terms_of_service_agreed: true, contact })?;
        let resp = self.post(&new_account, &body).await?;
        let kid = resp.location.clone().ok_or_else(|| Error::new("newAccount: no Location"))?;
        log::debug!("ACME account {kid}");
        self.kid = Some(kid);

        let identifiers = domains.iter().map(|d| Identifier { kind: "dns".into(), value: d.clone() }).collect();
        let new_order = self.dir.new_order.clone();
        let resp = self.post(&new_order, &to_json(&NewOrder { identifiers })?).await?;
        let order_url = resp.location.clone().ok_or_else(|| Error::new("newOrder: no Location"))?;
        let order: Order = json(&resp, "order")?;
        for authz in &order.authorizations {
            self.authorize(authz).await?;
        }
        let order = self.poll::<Order>(&order_url, "order", |o| o.status == "pending").await?;
        if order.status != "ready" {
            return Err(order_problem("order before finalization", &order));
        }
        let csr = Finalize { csr: b64(&cert_key.csr(domains)) };
        self.post(&order.finalize, &to_json(&csr)?).await?;
        let order =
            self.poll::<Order>(&order_url, "order", |o| o.status == "processing" || o.status == "ready").await?;
        let cert_url = match (&*order.status, &order.certificate) {
            ("valid", Some(url)) => url.clone(),
            _ => return Err(order_problem("order after finalization", &order)),
        };
        let resp = self.post(&cert_url, b"").await?;
        if resp.content_type != "application/pem-certificate-chain" {
            return Err(Error::new(alloc::format!("certificate: content type {:?}", resp.content_type)));
        }
        let chain_pem = String::from_utf8(resp.body).map_err(|_| Error::new("certificate: not text"))?;
        let (not_before, not_after) = chain_validity(&chain_pem)?;
        Ok(Issued { chain_pem, key_pem: cert_key.to_pem()?, not_before, not_after })
    }

    /// Gets one authorization to `valid` with the chosen challenge.
    async fn authorize(&mut self, url: &str) -> Result<(), Error> {
        let authz: Authorization = json(&self.post(url, b"").await?, "authorization")?;
        let name = authz.identifier.value.clone();
        match &*authz.status {
            "valid" => return Ok(()),
            "pending" => {}
            other => return Err(Error::new(alloc::format!("authorization for {name}: {other}"))),
        }
        let kind = self.kind;
        let Some(ch) = authz.challenges.iter().find(|c| c.kind == kind.name()) else {
            return Err(Error::new(alloc::format!("authorization for {name}: no {} challenge", kind.name())));
        };
        let token = ch.token.clone().unwrap_or_default();
        if !token_is_valid(&token) {
            return Err(Error::new(alloc::format!("authorization for {name}: bad token {token:?}")));
        }
        let answer =
            Answer { kind, domain: name.clone(), key_authorization: self.key.key_authorization(&token), token };
        self.io.publish(&answer)?;
        self.published.push(answer);
        if ch.status == "pending" {
            self.post(&ch.url.clone(), b"{}").await?;
        }
        let authz = self.poll::<Authorization>(url, "authorization", |a| a.status == "pending").await?;
        if authz.status == "valid" {
            log::info!("ACME: {name} validated ({})", kind.name());
            return Ok(());
        }
        let why = authz.challenges.iter().find_map(|c| c.error.as_ref()).cloned().unwrap_or_default();
        Err(Error::new(alloc::format!("authorization for {name}: {} ({why})", authz.status)))
    }

    /// POST-as-GETs `url` until `busy` is false.
    async fn poll<T: DeserializeOwned>(
        &mut self,
        url: &str,
        what: &str,
        busy: impl Fn(&T) -> bool,
    ) -> Result<T, Error> {
        for _ in 0..MAX_POLLS {
            let resp = self.post(url, b"").await?;
            let v: T = json(&resp, what)?;
            if !busy(&v) {
                return Ok(v);
            }
            let wait = resp.retry_after.unwrap_or(1).clamp(1, 10);
            self.io.sleep(Duration::from_secs(wait)).await;
        }
        Err(Error::new(alloc::format!("{what}: still not done after {MAX_POLLS} polls")))
    }

    /// A signed POST, retried with the server's fresh nonce on `badNonce`.
    async fn post(&mut self, url: &str, payload: &[u8]) -> Result<Response, Error> {
        let mut attempt = 0;
        loop {
            let nonce = match self.nonce.take() {
                Some(n) => n,
                None => self.fresh_nonce().await?,
            };
            let body = self.key.sign(url, &nonce, self.kid.as_deref(), payload);
            let resp = self.io.request("POST", url, Some(&body)).await?;
            self.nonce = resp.nonce.clone();
            if resp.status < 400 {
                return Ok(resp);
            }
            let problem = problem(&resp);
            attempt += 1;
            if problem.as_ref().is_some_and(Problem::is_bad_nonce) && attempt <= BAD_NONCE_RETRIES {
                log::debug!("ACME: bad nonce, retrying");
                continue;
            }
            return Err(match problem {
                Some(p) => Error::new(alloc::format!("{url}: {} {p}", resp.status)),
                None => Error::new(alloc::format!("{url}: HTTP {} ({:?})", resp.status, resp.content_type)),
            });
        }
    }

    async fn fresh_nonce(&mut self) -> Result<String, Error> {
        let url = self.dir.new_nonce.clone();
        let resp = self.io.request("HEAD", &url, None).await?;
        resp.nonce.ok_or_else(|| Error::new(alloc::format!("newNonce: HTTP {} without Replay-Nonce", resp.status)))
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::new(alloc::format!("JSON: {e}")))
}

/// A successful JSON response's body as `T`.
fn json<T: DeserializeOwned>(resp: &Response, what: &str) -> Result<T, Error> {
    if resp.status >= 300 {
        return Err(Error::new(alloc::format!("{what}: HTTP {}", resp.status)));
    }
    if resp.content_type != "application/json" {
        return Err(Error::new(alloc::format!("{what}: content type {:?}, not JSON", resp.content_type)));
    }
    serde_json::from_slice(&resp.body).map_err(|e| Error::new(alloc::format!("{what}: {e}")))
}

/// The problem document of an error response, if it has one.
fn problem(resp: &Response) -> Option<Problem> {
    (resp.content_type == "application/problem+json").then(|| serde_json::from_slice(&resp.body).ok()).flatten()
}

fn order_problem(what: &str, order: &Order) -> Error {
    let why = order.error.as_ref().map(|p| alloc::format!(" ({p})")).unwrap_or_default();
    Error::new(alloc::format!("{what}: {}{why}", order.status))
}
