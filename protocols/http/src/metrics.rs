//! HTTP responses by status code: one relaxed add per response, written in
//! the Prometheus text format only when scraped.

use morgana_runtime::metrics::{self, Counter, Encoder};

/// The status codes the server sends, in label order; anything else counts
/// as "other".
const CODES: [u16; 15] = [200, 206, 301, 304, 400, 404, 405, 408, 413, 414, 416, 431, 501, 503, 505];
const LABELS: [&str; 16] =
    ["200", "206", "301", "304", "400", "404", "405", "408", "413", "414", "416", "431", "501", "503", "505", "other"];

static RESPONSES: [Counter; 16] = [const { Counter::new() }; 16];

/// A response with `status` was sent (the server counts its own; call
/// this for one written elsewhere, such as a 503 at the connection cap).
#[inline]
pub fn response(status: u16) {
    let i = CODES.iter().position(|c| *c == status).unwrap_or(CODES.len());
    RESPONSES[i].inc();
}

/// Adds the response counts to what a metrics endpoint serves.
pub fn register() {
    metrics::register("http", write);
}

fn write(enc: &mut Encoder<'_>) {
    let counts: [(&str, &Counter); 16] = core::array::from_fn(|i| (LABELS[i], &RESPONSES[i]));
    enc.labelled("morgana_http_responses_total", "HTTP responses sent, by status code.", "code", &counts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_land_in_their_own_label_or_other() {
        response(404);
        response(404);
        response(299);
        let mut out = alloc::string::String::new();
        write(&mut Encoder::new(&mut out));
        assert!(out.starts_with("# HELP morgana_http_responses_total HTTP responses sent, by status code.\n# TYPE morgana_http_responses_total counter\n"));
        assert!(out.contains("\nmorgana_http_responses_total{code=\"404\"} 2\n"), "{out}");
        assert!(out.contains("\nmorgana_http_responses_total{code=\"other\"} 1\n"), "{out}");
        assert_eq!(out.lines().count(), 2 + 16);
    }
}
