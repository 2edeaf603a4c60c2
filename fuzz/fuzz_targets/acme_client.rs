//! Arbitrary bytes as an ACME server's answers: the input is split at
//! `\n--\n` into raw HTTP responses, one per request the client makes
//! (until they run out). The response parser and the whole ACME flow must
//! end with a certificate or an error: never a panic or a hang.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use morgana_acme::http::{parse, Response};
use morgana_acme::{issue, AccountKey, Answer, CertKey, ChallengeKind, Error, Io};

fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct Script<'a> {
    answers: std::vec::IntoIter<&'a [u8]>,
    published: usize,
}

impl Io for Script<'_> {
    async fn request(&mut self, method: &str, _url: &str, _body: Option<&[u8]>) -> Result<Response, Error> {
        let raw = self.answers.next().ok_or_else(|| Error::new("no more answers"))?;
        parse(raw, method == "HEAD", true)?.ok_or_else(|| Error::new("incomplete"))
    }
    async fn sleep(&mut self, _: Duration) {}
    fn publish(&mut self, _: &Answer) -> Result<(), Error> {
        self.published += 1;
        Ok(())
    }
    fn withdraw(&mut self, _: &Answer) {
        self.published -= 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let (kind, data) = match data.split_first() {
        Some((k, rest)) if k & 1 == 1 => (ChallengeKind::TlsAlpn01, rest),
        Some((_, rest)) => (ChallengeKind::Http01, rest),
        None => return,
    };
    let mut answers = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(4).position(|w| w == b"\n--\n") {
        answers.push(&rest[..at]);
        rest = &rest[at + 4..];
    }
    answers.push(rest);
    let mut io = Script { answers: answers.into_iter(), published: 0 };
    let account = AccountKey::from_secret(&[3; 32]).expect("a valid scalar");
    let cert_key = CertKey::from_secret(&[4; 32]).expect("a valid scalar");
    let domains = ["a.test".to_string()];
    let _ = run(issue(&mut io, &account, "https://127.0.0.1/dir", &[], &domains, &cert_key, kind));
    assert_eq!(io.published, 0, "every published answer is withdrawn");
});
