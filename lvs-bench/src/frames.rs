//! The frames and addresses the benchmarks use: every frame is padded to
//! [`FRAME_LEN`] bytes (the director's benchmark wrapper saves and restores
//! the first 64), and many distinct flows or services are numbered so that
//! index `i` always names the same tuple.

use std::net::{IpAddr, Ipv4Addr};

use lvs_lab::{
    packet::{Frame, Mac, ACK, SYN},
    xdpns::mac,
};

/// Minimum Ethernet frame without FCS, and what the wrapper saves.
pub const FRAME_LEN: usize = 64;

// The program-cost fixture: the director's two links and its neighbours
// (the fixed MACs of lvs_lab::xdpns).
pub const CLIENT_MAC: Mac = mac::CLIENT;
pub const DIR_EXT_MAC: Mac = mac::DIR_EXT;
pub const DIR_INT_MAC: Mac = mac::DIR_INT;
pub const RS_MAC: Mac = mac::RS;
pub const DR_RS_MAC: Mac = mac::DR_RS;

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 128);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 1);
/// NAT real server (behind the internal link).
pub const NAT_RS: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 129);
pub const NAT_RS_PORT: u16 = 8080;
/// DR real server, on the client's LAN (one-armed DR: XDP_TX).
pub const DR_RS: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 129);
/// TUN real server (behind the internal link).
pub const TUN_RS: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 131);

pub const NAT_PORT: u16 = 80;
pub const DR_PORT: u16 = 81;
pub const TUN_PORT: u16 = 82;
/// Not a service: the pass-through case.
pub const PASS_PORT: u16 = 22;

/// Source port of the single flow the repeat cases measure.
pub const CLIENT_PORT: u16 = 40000;

/// Pads the payload so the frame is at least [`FRAME_LEN`] bytes.
pub fn padded(mut f: Frame) -> Frame {
    let len = f.build().len();
    if len < FRAME_LEN {
        f.payload.resize(f.payload.len() + FRAME_LEN - len, 0);
    }
    f
}

/// A padded TCP frame with the given flags.
pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, macs: (Mac, Mac)) -> Vec<u8> {
    padded(
        Frame::tcp(
            (IpAddr::V4(src.0), src.1),
            (IpAddr::V4(dst.0), dst.1),
            flags,
        )
        .macs(macs.0, macs.1),
    )
    .build()
}

/// Client → VIP:port, as received on the director's external link.
pub fn to_vip(client: (Ipv4Addr, u16), port: u16, flags: u8) -> Vec<u8> {
    tcp(client, (VIP, port), flags, (CLIENT_MAC, DIR_EXT_MAC))
}

pub fn syn_to(client: (Ipv4Addr, u16), port: u16) -> Vec<u8> {
    to_vip(client, port, SYN)
}

pub fn ack_to(client: (Ipv4Addr, u16), port: u16) -> Vec<u8> {
    to_vip(client, port, ACK)
}

/// NAT real server → client, as received on the internal link.
pub fn nat_reply(client: (Ipv4Addr, u16)) -> Vec<u8> {
    tcp((NAT_RS, NAT_RS_PORT), client, ACK, (RS_MAC, DIR_INT_MAC))
}

/// Client address and port of flow `i`: 40 000 ports per address on
/// 10.100.0.0/16 (flow 0 is 10.100.0.1:20000), so a million flows use 25
/// addresses.
pub fn flow_client(i: u32) -> (Ipv4Addr, u16) {
    const PER_ADDR: u32 = 40_000;
    let host = 1 + i / PER_ADDR;
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 100, 0, 0)) + host);
    (ip, 20_000 + (i % PER_ADDR) as u16)
}

/// VIP of filler service `i` (10.200.0.0/16 upwards; never the fixture's).
pub fn filler_vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + 1 + i)
}

/// Address of real server `i` of a large service: 10.211.0.0/16 (host
/// part never 0 or 255).
pub fn real_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 211, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use lvs_lab::packet::parse;

    use super::*;

    #[test]
    fn frames_are_padded_and_valid() {
        for f in [
            syn_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ack_to(flow_client(999_999), DR_PORT),
            nat_reply((CLIENT, CLIENT_PORT)),
        ] {
            assert_eq!(f.len(), FRAME_LEN);
            let p = parse(&f).unwrap();
            assert!(p.ip_csum_ok && p.l4_csum_ok);
        }
        let p = parse(&syn_to((CLIENT, 1), NAT_PORT)).unwrap();
        assert_eq!((p.dst, p.dport), (IpAddr::V4(VIP), NAT_PORT));
        assert_eq!((p.src_mac, p.dst_mac), (CLIENT_MAC, DIR_EXT_MAC));
        // A frame already longer keeps its payload.
        let long = padded(Frame::tcp((CLIENT.into(), 1), (VIP.into(), 2), ACK).payload(&[7; 100]));
        assert_eq!(long.payload.len(), 100);
    }

    #[test]
    fn flows_are_distinct() {
        let n = 1_000_000;
        let mut idx: Vec<u32> = (0..n).step_by(997).chain([39_999, 40_000, n - 1]).collect();
        idx.sort_unstable();
        idx.dedup();
        let flows: HashSet<_> = idx.iter().map(|&i| flow_client(i)).collect();
        assert_eq!(flows.len(), idx.len());
        assert_eq!(flow_client(0), (Ipv4Addr::new(10, 100, 0, 1), 20000));
        assert_eq!(flow_client(40_000), (Ipv4Addr::new(10, 100, 0, 2), 20000));
        assert_eq!(flow_client(n - 1).0, Ipv4Addr::new(10, 100, 0, 25));
        assert_eq!(filler_vip(0), Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(filler_vip(9_999), Ipv4Addr::new(10, 200, 39, 16));
        assert_eq!(real_addr(0), Ipv4Addr::new(10, 211, 1, 1));
        assert_eq!(real_addr(999), Ipv4Addr::new(10, 211, 4, 250));
        let reals: HashSet<_> = (0..1000).map(real_addr).collect();
        assert_eq!(reals.len(), 1000);
    }
}
