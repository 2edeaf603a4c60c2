//! The direct stack's metrics: its device's frame counters (every driver
//! keeps them, see `morgana_devices::NetStats`) and the TCP defences'
//! counters, read when scraped; nothing is counted here on the fast path.

use morgana_devices::{Net, NetStats};
use morgana_runtime::metrics::{Encoder, Kind};
use smoltcp::socket::{tcp, Socket};

use super::{DirectStack, TcpDefenceStats};

impl<D: Net + 'static> DirectStack<D> {
    /// Writes the device's and the TCP stack's counters.
    pub(super) fn encode_metrics(&self, enc: &mut Encoder<'_>) {
        let net = self.stats();
        let tcp = self.tcp_defence_stats();
        let open = self
            .inner
            .borrow()
            .sockets
            .iter()
            .filter(|(_, s)| match s {
                Socket::Tcp(t) => !matches!(
                    t.state(),
                    tcp::State::Closed
                        | tcp::State::Listen
                        | tcp::State::SynSent
                        | tcp::State::SynReceived
                        | tcp::State::TimeWait
                ),
                _ => false,
            })
            .count();
        write(enc, net, tcp, open);
    }
}

/// Not generic over the device, so images with several drivers carry it once.
fn write(enc: &mut Encoder<'_>, net: NetStats, tcp: TcpDefenceStats, open: usize) {
    let frames = [
        ("morgana_net_rx_frames_total", "Frames received from the network device.", net.rx_frames),
        ("morgana_net_rx_bytes_total", "Bytes in the frames received.", net.rx_bytes),
        (
            "morgana_net_rx_dropped_total",
            "Arriving frames the device dropped (too large, no buffer, damaged).",
            net.rx_dropped,
        ),
        ("morgana_net_tx_frames_total", "Frames queued for transmission on the network device.", net.tx_frames),
        ("morgana_net_tx_bytes_total", "Bytes in the frames queued for transmission.", net.tx_bytes),
        ("morgana_net_tx_dropped_total", "Frames the device could not send.", net.tx_dropped),
    ];
    for (name, help, v) in frames {
        enc.counter(name, help, v);
    }
    enc.family("morgana_tcp_connections_open", Kind::Gauge, "TCP connections established and not yet closed.");
    enc.sample("morgana_tcp_connections_open", &[], open);
    let tcp = [
        ("morgana_tcp_connections_accepted_total", "TCP connections handed to the app.", tcp.accepted),
        (
            "morgana_tcp_connections_refused_total",
            "Handshakes completed while the accept queue (--tcp-backlog) was full, reset.",
            tcp.accept_queue_overflow,
        ),
        ("morgana_tcp_connections_shed_total", "Established TCP connections reset because memory was short.", tcp.shed),
        ("morgana_tcp_syn_answered_total", "SYNs answered by the SYN queue.", tcp.syn_answered),
        (
            "morgana_tcp_syn_cookies_sent_total",
            "SYNs answered with a SYN cookie (the SYN queue's bucket was full).",
            tcp.syn_cookies_sent,
        ),
        (
            "morgana_tcp_half_open_dropped_total",
            "Half-open connections dropped (expired or making room).",
            tcp.half_open_evicted,
        ),
        (
            "morgana_tcp_buffer_growth_refused_total",
            "TCP buffer growths refused because memory was short.",
            tcp.growth_refused,
        ),
    ];
    for (name, help, v) in tcp {
        enc.counter(name, help, v);
    }
}
