//! ACME HTTP-01 answers (RFC 8555 §8.3): a token's key authorization served
//! at `/.well-known/acme-challenge/TOKEN` while a certificate is ordered.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;
use core::fmt;

/// The path prefix the CA fetches (decoded, without the leading `/`).
pub const PREFIX: &str = ".well-known/acme-challenge/";

/// Most answers published at once (one per name being validated).
const MAX_ANSWERS: usize = 256;

/// The answers published now: token to key authorization. Clones share them.
#[derive(Clone, Default)]
pub struct Challenges(Rc<RefCell<BTreeMap<String, String>>>);

impl fmt::Debug for Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Challenges({} published)", self.0.borrow().len())
    }
}

impl Challenges {
    /// No answers yet.
    pub fn new() -> Challenges {
        Challenges::default()
    }

    /// Answers `token` with `key_authorization` (ignored beyond 256 answers).
    pub fn publish(&self, token: &str, key_authorization: &str) {
        let mut map = self.0.borrow_mut();
        if map.len() < MAX_ANSWERS || map.contains_key(token) {
            map.insert(token.into(), key_authorization.into());
        }
    }

    /// Stops answering `token`.
    pub fn withdraw(&self, token: &str) {
        self.0.borrow_mut().remove(token);
    }

    /// The answer for a decoded request path, if it is a challenge path:
    /// `Some(None)` for an unknown token.
    pub fn lookup(&self, path: &str) -> Option<Option<String>> {
        let token = path.strip_prefix(PREFIX)?;
        Some(self.0.borrow().get(token).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_publish_withdraw() {
        let c = Challenges::new();
        let shared = c.clone();
        assert_eq!(c.lookup("index.html"), None);
        assert_eq!(c.lookup(".well-known/acme-challenge/tok"), Some(None));
        shared.publish("tok", "tok.thumb");
        assert_eq!(c.lookup(".well-known/acme-challenge/tok"), Some(Some("tok.thumb".into())));
        shared.withdraw("tok");
        assert_eq!(c.lookup(".well-known/acme-challenge/tok"), Some(None));
        for i in 0..300 {
            c.publish(&alloc::format!("t{i}"), "x");
        }
        assert_eq!(c.0.borrow().len(), MAX_ANSWERS);
    }
}
