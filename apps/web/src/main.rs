//! A static web server over HTTP/1.1 and HTTPS. It serves, in order: the
//! directory given with `--site` (hosted), the content archive found at
//! boot (a boot module, or a block device holding a ustar archive), or the
//! site embedded at build time.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

mod acme;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::str::FromStr;
use core::time::Duration;

use morgana::kv::{Kind, KvError};
use morgana::log::{debug, info};
use morgana::Entropy;
use morgana::{
    net::SlotMetrics, ArgError, Args, ClockDevice, Content, Context, Env, Handle, KeyValue, ListenAddr, Slots,
    TcpListener, TcpStream,
};
use morgana_http::{serve_connection, Challenges, Site};
use morgana_tls::{CertCell, TlsAcceptor, ACME_TLS_ALPN};

include!(concat!(env!("OUT_DIR"), "/site.rs"));
include!(concat!(env!("OUT_DIR"), "/cert.rs"));

/// `--http`/`--https`: `ADDR:PORT`, `[V6]:PORT` or `:PORT`.
#[derive(Debug, Clone, Copy)]
struct Listen(ListenAddr);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Listen)
    }
}

struct Config {
    http: Vec<Listen>,
    https: Vec<Listen>,
    cert: Option<String>,
    key: Option<String>,
    site_dir: Option<String>,
    max_connections: usize,
    http_cfg: morgana_http::Config,
    acme: Option<acme::AcmeConfig>,
}

fn config(args: &mut Args) -> Result<Config, ArgError> {
    let mut http: Vec<Listen> = args.values("http", "address for plain HTTP (repeatable)")?;
    if http.is_empty() {
        let default = if morgana::HOSTED { "127.0.0.1:8080" } else { ":80" };
        http.push(default.parse().map_err(ArgError::Conflict)?);
    }
    let mut https: Vec<Listen> = args.values("https", "address for HTTPS (repeatable)")?;
    let no_https = args.switch("no-https", "serve plain HTTP only")?;
    if https.is_empty() && !no_https {
        let default = if morgana::HOSTED { "127.0.0.1:8443" } else { ":443" };
        https.push(default.parse().map_err(ArgError::Conflict)?);
    }
    if no_https {
        https.clear();
    }
    let cert: Option<String> = args.value("cert", "certificate chain, PEM (hosted; default: the embedded one)")?;
    let key: Option<String> = args.value("key", "private key, PEM (hosted; default: the embedded one)")?;
    if cert.is_some() != key.is_some() {
        return Err(ArgError::Conflict("--cert and --key go together".into()));
    }
    if (cert.is_some()) && !morgana::HOSTED {
        return Err(ArgError::Conflict("--cert needs files, which VM images do not have".into()));
    }
    let redirect =
        args.switch("redirect-https", "answer plain HTTP with a redirect to HTTPS (the first --https port)")?;
    // The redirect names the first HTTPS listener's port.
    let redirect_https = match (redirect, https.first()) {
        (false, _) => None,
        (true, None) => return Err(ArgError::Conflict("--redirect-https needs an HTTPS listener".into())),
        (true, Some(l)) if l.0.port == 0 => {
            return Err(ArgError::Conflict("--redirect-https needs an HTTPS listener with a fixed port".into()))
        }
        (true, Some(l)) => Some(l.0.port),
    };
    let hsts: Option<u64> = args.value(
        "hsts",
        "send Strict-Transport-Security with this max-age in seconds on HTTPS responses (default: none)",
    )?;
    if hsts.is_some() && https.is_empty() {
        return Err(ArgError::Conflict("--hsts needs an HTTPS listener".into()));
    }
    let site_dir = args.value("site", "serve this directory instead of the embedded site (hosted only)")?;
    let max_connections = args
        .value("max-connections", "open connections at most; at the cap the longest waiting makes way (default 512)")?
        .unwrap_or(512);
    let d = morgana_http::Config::default();
    let secs = |v: Option<u64>, d: Duration| v.map(Duration::from_secs).unwrap_or(d);
    let http_cfg = morgana_http::Config {
        header_timeout: secs(
            args.value("header-timeout", "seconds to receive a request head (default 10)")?,
            d.header_timeout,
        ),
        idle_timeout: secs(
            args.value("idle-timeout", "seconds a kept-alive connection may idle (default 30)")?,
            d.idle_timeout,
        ),
        redirect_https,
        hsts,
        ..d
    };
    if site_dir.is_some() && !morgana::HOSTED {
        return Err(ArgError::Conflict("--site needs files, which VM images do not have".into()));
    }
    let acme = acme::config(args)?;
    if acme.is_some() && cert.is_some() {
        return Err(ArgError::Conflict(
            "--acme-directory and --cert are two sources of one certificate: pick one".into(),
        ));
    }
    if acme.is_some() && https.is_empty() {
        return Err(ArgError::Conflict("--acme-directory needs an HTTPS listener".into()));
    }
    Ok(Config { http, https, cert, key, site_dir, max_connections, http_cfg, acme })
}

async fn load_site(env: &mut Env, cfg: &Config) -> morgana::Result<Site> {
    let mut site = Site::new();
    let from = match (&cfg.site_dir, env.content.as_mut()) {
        (Some(dir), _) => {
            for (path, bytes, modified) in env.load_dir(dir)? {
                site.add(&path, bytes, modified);
            }
            dir.clone()
        }
        (None, Some(content)) => {
            let from = format!("content from {}", content.source());
            add_content(&mut site, content).await.context(&from)?;
            from
        }
        (None, None) => {
            for (path, bytes, modified) in SITE {
                site.add(path, *bytes, *modified);
            }
            String::from("embedded")
        }
    };
    site.link_gzip_variants();
    if site.is_empty() {
        return Err(format!("the site ({from}) has no files").into());
    }
    info!("site: {} files, {} bytes ({from})", site.len(), site.bytes());
    Ok(site)
}

/// Adds every file of the content archive, with its modification time:
/// served in place from a boot module, read into memory once from a disk.
async fn add_content(site: &mut Site, content: &mut Content) -> Result<(), KvError> {
    let mut dirs = alloc::vec![String::new()];
    while let Some(dir) = dirs.pop() {
        for (name, kind) in content.list(&dir).await? {
            let key = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            if kind == Kind::Dir {
                dirs.push(key);
                continue;
            }
            let modified = content.stat(&key).await?.modified;
            match content.get_static(&key)? {
                Some(bytes) => site.add(&key, bytes, modified),
                None => site.add(&key, content.get(&key).await?, modified),
            }
        }
    }
    Ok(())
}

/// Heap one connection needs, about: 3 KiB idle over HTTP and 12 KiB in
/// a TLS handshake (measured hosted), more while a request is answered.
const CONNECTION_COST: usize = 24 * 1024;

/// Every listener's connections, for the metrics endpoint.
static CONNECTIONS: SlotMetrics = SlotMetrics::new();

/// Shared by every connection of one listener.
struct Server {
    site: Rc<Site>,
    cfg: morgana_http::Config,
    rt: Handle,
    clock: ClockDevice,
    /// Shared by all listeners.
    slots: Slots,
}

async fn accept_loop(mut listener: TcpListener, server: Rc<Server>, tls: Option<TlsAcceptor>) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("accept: {e}");
                continue;
            }
        };
        let Some(slot) = server.slots.admit().await else {
            // Every connection is being answered, or shed connections did
            // not give memory back in time: no task, no waiting. The 503 goes into the send buffer if it fits whole; the stream is
            // then closed (FIN after the 503), or reset if the 503 did not
            // fit. The stack, not the app, holds what is left.
            const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            if tls.is_some() {
                stream.abort(); // no plain-text answer on a TLS port
                continue;
            }
            match stream.try_write(BUSY) {
                Ok(n) if n == BUSY.len() => {
                    morgana_http::metrics::response(503);
                    let _ = stream.shutdown_write();
                }
                _ => stream.abort(),
            }
            debug!("{peer}: over the connection cap");
            continue;
        };
        stream.attach(slot);
        // Every write and the final close get a bound, so a client that
        // stops reading cannot hold a connection slot.
        stream.set_timeout(Some(server.cfg.write_timeout.max(server.cfg.idle_timeout)));
        let s = server.clone();
        let tls = tls.clone();
        // One task per connection, sized for its own protocol.
        match tls {
            None => server.rt.spawn(async move { plain_connection(stream, peer, &s).await }),
            Some(acceptor) => server.rt.spawn(async move { tls_connection(stream, peer, &s, &acceptor).await }),
        };
    }
}

async fn plain_connection(mut stream: TcpStream, peer: SocketAddr, s: &Server) {
    match serve_connection(&mut stream, &s.site, &s.cfg, &s.rt, &s.clock).await {
        Ok((outcome, n)) => {
            debug!("{peer}: {n} requests, {outcome:?}");
            let _ = stream.close().await;
        }
        Err(e) => debug!("{peer}: {e}"),
    }
}

async fn tls_connection(stream: TcpStream, peer: SocketAddr, s: &Server, acceptor: &TlsAcceptor) {
    let mut tls = match acceptor.accept(stream, &s.rt, s.cfg.header_timeout).await {
        Ok(t) => t,
        Err(e) => {
            debug!("{peer}: TLS handshake: {e}");
            return;
        }
    };
    if tls.alpn() == Some(ACME_TLS_ALPN) {
        // A CA's TLS-ALPN-01 check: nothing follows the handshake (RFC 8737 §3).
        debug!("{peer}: TLS-ALPN-01 validation handshake");
        let _ = tls.close().await;
        return;
    }
    match serve_connection(&mut tls, &s.site, &s.cfg, &s.rt, &s.clock).await {
        Ok((outcome, n)) => {
            debug!("{peer}: {n} requests over {:?}, {outcome:?}", tls.version());
            let _ = tls.close().await;
        }
        Err(e) => debug!("{peer}: {e}"),
    }
}

/// The HTTPS certificate's cell: filled from `--cert`/`--key`, the
/// embedded certificate, or with ACME a temporary self-signed one for the
/// names, which the CA's replaces once it arrives.
fn certificate(env: &mut Env, cfg: &Config) -> morgana::Result<CertCell> {
    let (cert, key) = match (&cfg.cert, &cfg.key, &cfg.acme) {
        (Some(c), Some(k), _) => (env.read_file(c)?.into_bytes(), env.read_file(k)?.into_bytes()),
        (_, _, Some(acme)) => {
            let (cert, key) = acme::temporary_certificate(acme, &mut env.entropy, &env.clock)
                .map_err(|e| format!("temporary certificate: {e}"))?;
            info!(
                "HTTPS serves a temporary self-signed certificate for {} until the ACME certificate arrives",
                acme.domains().join(", ")
            );
            (cert.into_bytes(), key.into_bytes())
        }
        _ => {
            if DEV_CERT {
                info!(
                    "HTTPS uses the DEVELOPMENT certificate for localhost generated at build time: not for production"
                );
            }
            (CERT.to_vec(), KEY.to_vec())
        }
    };
    let cell = CertCell::new();
    cell.set_pem(&cert, &key)?;
    Ok(cell)
}

async fn serve(mut env: Env, cfg: Config) -> morgana::Result {
    if cfg.acme.is_some() && env.sandboxed() {
        return Err("--acme-directory connects to the CA after start, which --sandbox forbids".into());
    }
    if !cfg.https.is_empty() {
        // TLS keys and nonces need real randomness: refuse to start without it.
        let mut probe = [0u8; 16];
        env.entropy.fill(&mut probe).map_err(|e| {
            format!("HTTPS needs an entropy source (virtio-rng or RDRAND), and none works: {e}; use --no-https to serve plain HTTP")
        })?;
    }
    let site = Rc::new(load_site(&mut env, &cfg).await?);
    // At the cap, the connection that has waited longest for its client
    // (idle keep-alive, slow request head or TLS handshake) makes way.
    let slots = Slots::new(cfg.max_connections, env.rt.clone()).with_cost(CONNECTION_COST).with_metrics(&CONNECTIONS);
    morgana_http::metrics::register();
    morgana::metrics::register("web", |enc| CONNECTIONS.write(enc, "morgana_web", "HTTP and HTTPS"));
    let cell = if cfg.https.is_empty() { None } else { Some(certificate(&mut env, &cfg)?) };
    // With TLS-ALPN-01 the CA asks for `acme-tls/1` on the HTTPS listeners.
    let alpn: &[&[u8]] =
        if cfg.acme.as_ref().is_some_and(|a| a.tls_alpn()) { &[b"http/1.1", ACME_TLS_ALPN] } else { &[b"http/1.1"] };
    let tls = match &cell {
        Some(cell) => {
            info!("HTTPS crypto: {}", morgana_tls::CRYPTO);
            Some(TlsAcceptor::with_cell(cell.clone(), alpn, env.clock)?)
        }
        None => None,
    };
    let challenges = cfg.acme.as_ref().map(|_| Challenges::new());
    if let (Some(acme), Some(cell), Some(challenges)) = (cfg.acme.clone(), cell, challenges.clone()) {
        let mut manager = acme::Manager {
            cfg: acme,
            net: env.net.clone(),
            rt: env.rt.clone(),
            clock: env.clock,
            entropy: env.entropy,
            files: env.files(),
            cell,
            challenges,
        };
        let (https, account) = manager.prepare().map_err(|e| format!("ACME: {e}"))?;
        env.spawn(manager.run(https, account));
    }
    let listeners = cfg.http.iter().map(|l| (l, None)).chain(cfg.https.iter().map(|l| (l, tls.clone())));
    for (l, tls) in listeners {
        let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
        let listener = env.net.tcp_listen(l.0).context(format_args!("{scheme} {}", l.0))?;
        let server = Rc::new(Server {
            site: site.clone(),
            cfg: morgana_http::Config {
                // Only plain HTTP redirects to HTTPS.
                redirect_https: if tls.is_some() { None } else { cfg.http_cfg.redirect_https },
                // HSTS over plain HTTP means nothing (RFC 6797 §7.2).
                hsts: if tls.is_some() { cfg.http_cfg.hsts } else { None },
                // The CA fetches HTTP-01 answers over plain HTTP.
                acme_challenges: if tls.is_some() { None } else { challenges.clone() },
                ..cfg.http_cfg.clone()
            },
            rt: env.rt.clone(),
            clock: env.clock,
            slots: slots.clone(),
        });
        env.spawn(accept_loop(listener, server, tls));
        info!("serving {scheme} on {}", l.0);
    }
    core::future::pending::<()>().await;
    Ok(())
}

morgana::main!(config, serve);
