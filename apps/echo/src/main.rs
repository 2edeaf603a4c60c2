//! Echo (RFC 862): every byte received on a TCP connection or in a UDP
//! datagram is sent back.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

use morgana::log::{debug, info, warn};
use morgana::{ArgError, Args, Context, Env, TcpStream, UdpSocket};

struct Config {
    port: u16,
}

fn config(args: &mut Args) -> Result<Config, ArgError> {
    let port = args.value("port", "TCP and UDP port to echo on (default 7)")?.unwrap_or(7);
    Ok(Config { port })
}

async fn serve(env: Env, cfg: Config) -> morgana::Result {
    let mut tcp = env.net.tcp_listen(cfg.port).context(format_args!("TCP port {}", cfg.port))?;
    let udp = env.net.udp_bind(cfg.port).context(format_args!("UDP port {}", cfg.port))?;
    info!("echo on TCP and UDP port {} ({})", cfg.port, env.net.name());
    env.spawn(udp_echo(udp));
    loop {
        let (stream, peer) = tcp.accept().await?;
        debug!("connection from {peer}");
        env.spawn(async move {
            if let Err(e) = tcp_echo(stream).await {
                debug!("connection from {peer}: {e}");
            }
        });
    }
}

async fn tcp_echo(mut stream: TcpStream) -> Result<(), morgana::net::Error> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.close().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn udp_echo(mut socket: UdpSocket) {
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if let Err(e) = socket.send_to(&buf[..n], peer).await {
                    debug!("UDP reply to {peer}: {e}");
                }
            }
            Err(e) => warn!("UDP receive: {e}"),
        }
    }
}

morgana::main!(config, serve);
