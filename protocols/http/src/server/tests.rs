use super::*;

#[test]
fn rfc3986_targets_cannot_leave_the_root() {
    assert_eq!(decode_target("/a/b.html?x=1"), Some(("a/b.html".into(), "x=1")));
    assert_eq!(decode_target("/a/"), Some(("a/".into(), "")));
    assert_eq!(decode_target("/"), Some(("".into(), "")));
    assert_eq!(decode_target("/a%20b"), Some(("a b".into(), "")));
    assert_eq!(decode_target("http://host/x"), Some(("x".into(), "")));
    for bad in
        ["/../etc/passwd", "/a/../../x", "/%2e%2e/x", "/%2E%2E%2fx", "/a%2fb", "/a%00", "/a\\b", "/%zz", "x", "*"]
    {
        assert_eq!(decode_target(bad), None, "{bad}");
    }
    assert_eq!(decode_target("/./a"), Some(("a".into(), "")));
}

#[test]
fn rfc9110_14_ranges() {
    assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
    assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
    assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
    assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
    assert_eq!(parse_range("bytes=100-", 100), Err(()));
    assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
    assert_eq!(parse_range("items=0-1", 100), Ok(None));
    assert_eq!(parse_range("bytes=9-0", 100), Ok(None));
}

#[test]
fn rfc9110_12_accept_encoding() {
    let h = |v: &'static str| [httparse::Header { name: "Accept-Encoding", value: v.as_bytes() }];
    assert!(accepts_gzip(&h("gzip, deflate, br")));
    assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
    assert!(!accepts_gzip(&h("gzip;q=0")));
    assert!(!accepts_gzip(&h("br")));
}

#[test]
fn rfc9110_13_etags() {
    assert!(etag_matches("\"a\", \"b\"", "\"b\""));
    assert!(etag_matches("W/\"b\"", "\"b\""));
    assert!(etag_matches("*", "\"b\""));
    assert!(!etag_matches("\"c\"", "\"b\""));
}
