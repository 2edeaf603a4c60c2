//! The client against a fake CA in memory: the whole flow, the nonce
//! retry, and hostile answers (which must give errors, never panics).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use crate::csr::pem;
use crate::der::{bit_string, seq, tlv};
use crate::http::Response;
use crate::{issue, AccountKey, Answer, CertKey, ChallengeKind, Error, Io};

/// Runs a future whose I/O is all in memory (it never waits).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the future never finished");
}

#[derive(Default)]
struct FakeCa {
    /// Per URL, an override of the normal answer.
    hostile: BTreeMap<&'static str, Response>,
    /// Reject this many nonces first.
    bad_nonces: usize,
    nonce: u32,
    published: BTreeMap<String, String>,
    requests: Vec<String>,
    slept: Duration,
    authz_polls: u32,
    finalized: bool,
}

fn json(status: u16, body: &str) -> Response {
    Response { status, content_type: "application/json".into(), body: body.as_bytes().to_vec(), ..Response::default() }
}

fn leaf_pem() -> String {
    let validity = seq(&[&tlv(0x17, b"250101000000Z"), &tlv(0x17, b"250401000000Z")]);
    let tbs = seq(&[&tlv(2, &[1]), &seq(&[]), &seq(&[]), &validity, &seq(&[])]);
    pem("CERTIFICATE", &seq(&[&tbs, &seq(&[]), &bit_string(&[0])]))
}

impl Io for FakeCa {
    async fn request(&mut self, method: &str, url: &str, body: Option<&[u8]>) -> Result<Response, Error> {
        self.requests.push(alloc::format!("{method} {url}"));
        self.nonce += 1;
        let mut resp = if let Some(r) = self.hostile.get(url) {
            r.clone()
        } else if body.is_some() && self.bad_nonces > 0 {
            self.bad_nonces -= 1;
            Response {
                status: 400,
                content_type: "application/problem+json".into(),
                body: br#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale"}"#.to_vec(),
                ..Response::default()
            }
        } else {
            match url {
                "dir" => json(200, r#"{"newNonce":"nonce","newAccount":"acct","newOrder":"order"}"#),
                "nonce" => Response { status: 200, ..Response::default() },
                "acct" => Response { location: Some("acct/1".into()), ..json(201, "{}") },
                "order" => Response {
                    location: Some("order/1".into()),
                    ..json(201, r#"{"status":"pending","authorizations":["authz/1"],"finalize":"fin"}"#)
                },
                "authz/1" => {
                    let status = if self.published.is_empty() || self.authz_polls < 2 { "pending" } else { "valid" };
                    if !self.published.is_empty() {
                        self.authz_polls += 1;
                    }
                    json(
                        200,
                        &alloc::format!(
                            r#"{{"status":"{status}","identifier":{{"type":"dns","value":"a.test"}},"challenges":[
                            {{"type":"http-01","url":"chall","token":"tokentokentokentoken","status":"pending"}}]}}"#
                        ),
                    )
                }
                "chall" => json(200, "{}"),
                "order/1" if self.finalized => json(200, r#"{"status":"valid","finalize":"fin","certificate":"cert"}"#),
                "order/1" => json(200, r#"{"status":"ready","finalize":"fin"}"#),
                "fin" => {
                    self.finalized = true;
                    json(200, r#"{"status":"processing","finalize":"fin"}"#)
                }
                "cert" => Response {
                    status: 200,
                    content_type: "application/pem-certificate-chain".into(),
                    body: leaf_pem().into_bytes(),
                    ..Response::default()
                },
                _ => json(404, "{}"),
            }
        };
        resp.nonce = Some(self.nonce.to_string());
        Ok(resp)
    }

    async fn sleep(&mut self, d: Duration) {
        self.slept += d;
    }

    fn publish(&mut self, answer: &Answer) -> Result<(), Error> {
        assert_eq!(answer.kind, ChallengeKind::Http01);
        self.published.insert(answer.token.clone(), answer.key_authorization.clone());
        Ok(())
    }

    fn withdraw(&mut self, answer: &Answer) {
        self.published.remove(&answer.token);
    }
}

fn attempt(ca: &mut FakeCa) -> Result<crate::Issued, Error> {
    let account = AccountKey::from_secret(&[3; 32]).unwrap();
    let cert_key = CertKey::from_secret(&[4; 32]).unwrap();
    run(issue(ca, &account, "dir", &[], &["a.test".to_string()], &cert_key, ChallengeKind::Http01))
}

#[test]
fn whole_flow_publishes_then_withdraws_the_answer() {
    let mut ca = FakeCa { bad_nonces: 2, ..FakeCa::default() };
    let issued = attempt(&mut ca).unwrap();
    assert_eq!((issued.not_before, issued.not_after), (1_735_689_600, 1_743_465_600));
    assert!(issued.key_pem.contains("PRIVATE KEY"));
    assert!(ca.published.is_empty(), "the challenge answer is withdrawn");
    assert!(ca.requests.contains(&"POST chall".to_string()));
    assert!(ca.requests.contains(&"POST fin".to_string()));
    assert_eq!(ca.requests.iter().filter(|r| *r == "POST acct").count(), 3, "two bad nonces retried");
    assert!(ca.slept >= Duration::from_secs(2), "polls wait between tries");
}

#[test]
fn hostile_answers_are_errors() {
    let cases: Vec<(&'static str, Response)> = alloc::vec![
        ("dir", json(200, "{not json")),
        ("dir", Response { content_type: "text/html".into(), ..json(200, "{}") }),
        ("dir", json(500, "{}")),
        ("acct", json(201, "{}")), // no Location
        ("order", Response { location: Some("order/1".into()), ..json(201, r#"{"status":"pending"}"#) }),
        ("authz/1", json(200, r#"{"status":"pending","identifier":{"type":"dns","value":"a"},"challenges":[]}"#)),
        (
            "authz/1",
            json(
                200,
                r#"{"status":"pending","identifier":{"type":"dns","value":"a"},"challenges":[
                {"type":"http-01","url":"chall","token":"../../../../etc/passwd","status":"pending"}]}"#
            )
        ),
        ("order/1", json(200, r#"{"status":"invalid","finalize":"fin","error":{"type":"x","detail":"no"}}"#)),
        ("cert", Response { content_type: "text/plain".into(), ..json(200, "x") }),
        (
            "cert",
            Response {
                status: 200,
                content_type: "application/pem-certificate-chain".into(),
                body: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
                ..Response::default()
            }
        ),
    ];
    for (url, resp) in cases {
        let mut ca = FakeCa::default();
        ca.hostile.insert(url, resp.clone());
        let r = attempt(&mut ca);
        assert!(r.is_err(), "{url}: {:?} was accepted", core::str::from_utf8(&resp.body));
        assert!(ca.published.is_empty(), "{url}: answer left published");
    }
}

#[test]
fn endless_bad_nonces_and_pending_give_up() {
    let mut ca = FakeCa { bad_nonces: 1000, ..FakeCa::default() };
    assert!(attempt(&mut ca).unwrap_err().0.contains("badNonce"));
    let mut ca = FakeCa::default();
    let pending = r#"{"status":"pending","identifier":{"type":"dns","value":"a"},"challenges":[
        {"type":"http-01","url":"chall","token":"tokentokentokentoken","status":"pending"}]}"#;
    ca.hostile.insert("authz/1", json(200, pending));
    assert!(attempt(&mut ca).unwrap_err().0.contains("polls"));
}
