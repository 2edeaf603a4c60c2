//! The `--acme-*` flags.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use morgana::{ArgError, Args};
use morgana_acme::ChallengeKind;

/// The `--acme-*` flags.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub(super) directory: String,
    pub(super) domains: Vec<String>,
    pub(super) contact: Vec<String>,
    pub(super) ca: Ca,
    pub(super) state: Option<String>,
    pub(super) renew_percent: u64,
    pub(super) challenge: ChallengeKind,
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
pub(super) enum Ca {
    /// `--acme-ca FILE` (hosted).
    File(String),
    /// Embedded at build time (`MORGANA_WEB_ACME_CA`).
    Embedded(&'static [u8]),
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
