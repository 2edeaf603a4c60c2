//! HTTPS to the ACME server: one TCP connection and TLS handshake per
//! request (`Connection: close`), the server's chain checked against the
//! configured roots.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use morgana_devices::Clock;
use morgana_net::Stack;
use morgana_runtime::Handle;
use morgana_tls::TlsConnector;

use crate::http::{exchange, Request, Response};
use crate::Error;

/// Time for one whole request: connect, handshake, send and receive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS client for ACME requests.
#[derive(Clone, Debug)]
pub struct Https {
    net: Stack,
    rt: Handle,
    tls: TlsConnector,
}

/// An `https://` URL's parts: (authority as written, host without port or
/// brackets, address, origin-form path).
pub fn split_url(url: &str) -> Result<(&str, &str, SocketAddr, &str), Error> {
    let bad = || Error::new(alloc::format!("not an https URL with an IP address or localhost: {url:?}"));
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (authority, 443),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    // No resolver in the unikernel: the directory is named by address.
    let ip: IpAddr = match bare.parse() {
        Ok(ip) => ip,
        Err(_) if bare.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(_) => return Err(bad()),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad());
    }
    Ok((authority, bare, SocketAddr::new(ip, port), path))
}

impl Https {
    /// A client trusting the PEM roots `ca_pem` for the ACME server.
    pub fn new<C: Clock + Send + Sync + 'static>(
        net: Stack,
        rt: Handle,
        ca_pem: &[u8],
        clock: C,
    ) -> Result<Https, Error> {
        let tls = TlsConnector::new(ca_pem, &[b"http/1.1"], clock).map_err(|e| Error::new(alloc::format!("{e}")))?;
        Ok(Https { net, rt, tls })
    }

    /// One request; the whole exchange is bounded in time and size.
    pub async fn request(&self, method: &str, url: &str, body: Option<&[u8]>) -> Result<Response, Error> {
        let (authority, server_name, addr, path) = split_url(url)?;
        let work = async {
            let tcp =
                self.net.tcp_connect(addr, REQUEST_TIMEOUT).await.map_err(|e| Error::new(alloc::format!("{e}")))?;
            let mut tls = self
                .tls
                .connect(tcp, server_name, &self.rt, REQUEST_TIMEOUT)
                .await
                .map_err(|e| Error::new(alloc::format!("{e}")))?;
            let resp = exchange(&mut tls, &Request { method, host: authority, path, body }).await?;
            let _ = tls.close().await;
            Ok(resp)
        };
        match self.rt.timeout(REQUEST_TIMEOUT, work).await {
            Ok(r) => r.map_err(|e: Error| Error::new(alloc::format!("{method} {url}: {e}"))),
            Err(_) => Err(Error::new(alloc::format!("{method} {url}: timed out"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (a, h, addr, p) = split_url("https://127.0.0.1:14000/dir").unwrap();
        assert_eq!((a, h, addr, p), ("127.0.0.1:14000", "127.0.0.1", "127.0.0.1:14000".parse().unwrap(), "/dir"));
        let (_, h, addr, p) = split_url("https://localhost").unwrap();
        assert_eq!((h, addr, p), ("localhost", "127.0.0.1:443".parse().unwrap(), "/"));
        let (_, h, addr, _) = split_url("https://[::1]:8443/x?y").unwrap();
        assert_eq!((h, addr), ("::1", "[::1]:8443".parse().unwrap()));
        assert!(split_url("http://127.0.0.1/dir").is_err());
        assert!(split_url("https://acme.example/dir").is_err());
        assert!(split_url("https://127.0.0.1:99999/").is_err());
        assert!(split_url("https://127.0.0.1/a b").is_err());
    }
}
