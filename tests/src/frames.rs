//! Hand-built Ethernet frames for tests that play a hostile peer.

use std::net::Ipv4Addr;

/// The ones' complement sum of RFC 1071, folded.
fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP segment over IPv4 in an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct Tcp4 {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub ack: u32,
    /// TCP flags: 0x02 SYN, 0x10 ACK, 0x04 RST.
    pub flags: u8,
}

impl Tcp4 {
    /// The frame, with an MSS option of 1460 on a SYN.
    pub fn frame(&self) -> Vec<u8> {
        self.frame_with(&[])
    }

    /// The frame carrying `payload`.
    pub fn frame_with(&self, payload: &[u8]) -> Vec<u8> {
        let options: &[u8] = if self.flags & 0x02 != 0 { &[2, 4, 0x05, 0xb4] } else { &[] };
        let tcp_len = 20 + options.len() + payload.len();
        let mut tcp = Vec::with_capacity(tcp_len);
        tcp.extend_from_slice(&self.src.1.to_be_bytes());
        tcp.extend_from_slice(&self.dst.1.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.push((((20 + options.len()) / 4) as u8) << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&64240u16.to_be_bytes()); // window
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        tcp.extend_from_slice(options);
        tcp.extend_from_slice(payload);
        let (s, d) = (self.src.0.octets(), self.dst.0.octets());
        let pseudo = [s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], 0, 6, 0, tcp_len as u8];
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());

        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
        ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&s);
        ip.extend_from_slice(&d);
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        let mut f = Vec::with_capacity(14 + ip.len() + tcp.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f
    }
}

/// An IPv6 router advertisement from `src_mac`/`fe80::9` to all nodes,
/// with one Prefix Information option (autonomous and on-link).
pub fn router_advertisement(src_mac: [u8; 6], prefix: [u8; 16], prefix_len: u8) -> Vec<u8> {
    let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let dst = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    // Type 134, code 0, checksum, hop limit 64, no flags, router lifetime
    // 1800 s, reachable time and retransmit timer unspecified.
    let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&[3, 4, prefix_len, 0xc0]);
    icmp.extend_from_slice(&86400u32.to_be_bytes()); // valid lifetime
    icmp.extend_from_slice(&14400u32.to_be_bytes()); // preferred lifetime
    icmp.extend_from_slice(&[0; 4]);
    icmp.extend_from_slice(&prefix);
    let len = (icmp.len() as u32).to_be_bytes();
    let c = checksum(&[&src, &dst, &len, &[0, 0, 0, 58], &icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&icmp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let t = Tcp4 {
            src_mac: [2, 0, 0, 0, 0, 9],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src: (Ipv4Addr::new(198, 18, 0, 1), 4000),
            dst: (Ipv4Addr::new(10, 0, 0, 1), 7),
            seq: 1,
            ack: 0,
            flags: 0x02,
        };
        let f = t.frame();
        assert_eq!(checksum(&[&f[14..34]]), 0, "IPv4 header");
        let pseudo = [198, 18, 0, 1, 10, 0, 0, 1, 0, 6, 0, 24];
        assert_eq!(checksum(&[&pseudo, &f[34..]]), 0, "TCP");
    }
}
