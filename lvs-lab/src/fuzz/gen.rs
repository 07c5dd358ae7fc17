//! The generator: valid frames of every kind the director meets, then
//! modified (VLAN tag, IP options, IPv6 extension header, fragment, TTL,
//! foreign MAC, TCP flags) and mutated (bytes, lengths, truncations,
//! garbage), all drawn from one ChaCha8 stream: a seed gives the same
//! frames on every machine and every run.

use std::net::IpAddr;

use rand_chacha::{
    rand_core::{RngCore, SeedableRng},
    ChaCha8Rng,
};

use super::{
    view::{fix_ip_checksum, fix_l4_checksum, view},
    Method, Service, World,
};
use crate::packet::{
    icmp4_error, icmp6_error, ipv4_header, ipv6_header, with_ip_options, Frame, ACK, FIN, PSH, RST,
    SYN, TCP, UDP,
};

/// One frame to run: the bytes, the link it arrives on, and what it was
/// made as (for the failure report).
#[derive(Clone, Debug)]
pub struct Case {
    pub frame: Vec<u8>,
    pub ifindex: u32,
    pub what: String,
}

/// TCP flag combinations worth sending, hostile ones included.
const FLAGS: [u8; 12] = [
    SYN,
    ACK,
    ACK | PSH,
    FIN | ACK,
    RST,
    RST | ACK,
    SYN | ACK,
    SYN | FIN,
    SYN | FIN | RST,
    SYN | FIN | RST | ACK | PSH,
    0,
    0xff,
];

/// The generator over a [`World`].
pub struct Gen {
    rng: ChaCha8Rng,
    world: World,
}

impl Gen {
    pub fn new(seed: u64, world: World) -> Gen {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            world,
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.next_u64() % 100 < percent
    }

    fn byte(&mut self) -> u8 {
        self.rng.next_u32() as u8
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())].clone()
    }

    fn client(&mut self, v6: bool) -> IpAddr {
        let c: Vec<IpAddr> = self
            .world
            .clients
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .copied()
            .collect();
        self.pick(&c)
    }

    fn router(&mut self, v6: bool) -> IpAddr {
        let r: Vec<IpAddr> = self
            .world
            .routers
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .copied()
            .collect();
        self.pick(&r)
    }

    /// A client port: mostly one with a connection, sometimes any.
    fn port(&mut self) -> u16 {
        if self.chance(70) {
            let p = self.world.tracked_ports.clone();
            self.pick(&p)
        } else {
            1024 + self.below(64000) as u16
        }
    }

    fn payload(&mut self) -> Vec<u8> {
        let n = self.pick(&[0usize, 0, 1, 7, 18, 64, 300]);
        (0..n).map(|_| self.byte()).collect()
    }

    fn l4_frame(&mut self, proto: u8, src: (IpAddr, u16), dst: (IpAddr, u16)) -> Frame {
        let mut f = if proto == TCP {
            let flags = self.pick(&FLAGS);
            Frame::tcp(src, dst, flags)
        } else {
            let mut f = Frame::udp(src, dst);
            f.udp_no_csum = src.0.is_ipv4() && self.chance(10);
            f
        };
        f.payload = self.payload();
        f.df = self.chance(80);
        f
    }

    fn service(&mut self) -> Service {
        let s = self.world.services.clone();
        self.pick(&s)
    }

    /// A valid frame of a random kind, untagged, and the link it comes in by.
    fn base(&mut self) -> (Vec<u8>, u32, String) {
        let (ext, int) = (self.world.ext.clone(), self.world.int.clone());
        match self.below(10) {
            // A service's client traffic (the most common kind).
            0..=2 => {
                let s = self.service();
                let c = (self.client(s.vip.is_ipv6()), self.port());
                let f = self.l4_frame(s.proto, c, (s.vip, s.port));
                let what = format!("to service {:?} {}:{}", s.method, s.vip, s.port);
                (f.macs(ext.peer, ext.mac).build(), ext.ifindex, what)
            }
            // Not a service's: another port of a VIP, another address.
            3 => {
                let s = self.service();
                let v6 = s.vip.is_ipv6();
                let c = (self.client(v6), self.port());
                let dst = if self.chance(50) {
                    (s.vip, s.port.wrapping_add(1 + self.below(100) as u16))
                } else {
                    (self.router(v6), s.port)
                };
                let proto = self.pick(&[TCP, UDP]);
                let f = self.l4_frame(proto, c, dst);
                (
                    f.macs(ext.peer, ext.mac).build(),
                    ext.ifindex,
                    "not a service's".into(),
                )
            }
            // A NAT real server's reply.
            4 | 5 => {
                let nat: Vec<Service> = self
                    .world
                    .services
                    .iter()
                    .filter(|s| s.method == Method::Nat)
                    .cloned()
                    .collect();
                let s = self.pick(&nat);
                let r = self.pick(&s.reals);
                let c = (self.client(s.vip.is_ipv6()), self.port());
                let f = self.l4_frame(s.proto, r, c);
                (
                    f.macs(int.peer, int.mac).build(),
                    int.ifindex,
                    "NAT reply".into(),
                )
            }
            // ICMP errors quoting a (tracked or not) connection's packet.
            6 | 7 => self.icmp_error(),
            // IP-in-IP for `lvs decap` (and, to the director, not its own).
            8 => self.tunnelled(),
            // Echo to a VIP, ARP.
            _ => {
                if self.chance(50) {
                    let s = self.service();
                    let f = if let IpAddr::V4(v) = s.vip {
                        let IpAddr::V4(c) = self.client(false) else {
                            unreachable!()
                        };
                        icmp4_error(ext.peer, ext.mac, c, v, 8, 0, [0, 1, 0, 1], b"ping")
                    } else {
                        let IpAddr::V6(c) = self.client(true) else {
                            unreachable!()
                        };
                        let IpAddr::V6(v) = s.vip else { unreachable!() };
                        icmp6_error(ext.peer, ext.mac, c, v, 128, 0, [0, 1, 0, 1], b"ping")
                    };
                    (f, ext.ifindex, "echo request".into())
                } else {
                    let mut arp = vec![0xff; 6];
                    arp.extend_from_slice(&ext.peer);
                    arp.extend_from_slice(&[0x08, 0x06]);
                    arp.extend((0..28).map(|_| self.byte()));
                    (arp, ext.ifindex, "ARP".into())
                }
            }
        }
    }

    /// An ICMP(v6) error: from a router inside about a packet sent to a
    /// real server (to the client), or from a router outside about a
    /// packet the VIP sent (to the VIP).
    fn icmp_error(&mut self) -> (Vec<u8>, u32, String) {
        let (ext, int) = (self.world.ext.clone(), self.world.int.clone());
        let s = self.service();
        let v6 = s.vip.is_ipv6();
        let client = (self.client(v6), self.port());
        let inside = self.chance(50);
        let (quoted, from, to, link) = if inside {
            let r = self.pick(&s.reals);
            (
                self.l4_frame(s.proto, client, r),
                self.router(v6),
                client.0,
                &int,
            )
        } else {
            (
                self.l4_frame(s.proto, (s.vip, s.port), client),
                self.router(v6),
                s.vip,
                &ext,
            )
        };
        let q = quoted.build();
        let hl = if v6 { 40 } else { 20 };
        let n = (hl + self.pick(&[8usize, 8, 8, 4, 20, 64])).min(q.len() - 14);
        let quote = &q[14..14 + n];
        let f = match (from, to) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (t, c) = self.pick(&[(3u8, 4u8), (3, 1), (11, 0), (12, 0), (5, 0)]);
                icmp4_error(link.peer, link.mac, a, b, t, c, [0, 0, 5, 0], quote)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let t = self.pick(&[1u8, 2, 3, 4, 129]);
                icmp6_error(link.peer, link.mac, a, b, t, 0, [0, 0, 5, 0], quote)
            }
            _ => unreachable!("one family"),
        };
        let what = format!(
            "ICMP error from {}",
            if inside { "inside" } else { "outside" }
        );
        (f, link.ifindex, what)
    }

    /// IP-in-IP (IPv6-in-IPv6) of a client's packet to a decap address.
    fn tunnelled(&mut self) -> (Vec<u8>, u32, String) {
        let ext = self.world.ext.clone();
        let s = self.service();
        let v6 = s.vip.is_ipv6();
        let c = (self.client(v6), self.port());
        let inner = self.l4_frame(s.proto, c, (s.vip, s.port)).build();
        let cands: Vec<IpAddr> = self
            .world
            .decap_addrs
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .copied()
            .collect();
        let dst = if self.chance(80) && !cands.is_empty() {
            self.pick(&cands)
        } else {
            self.router(v6)
        };
        let src = self.router(v6);
        let mut f = inner[..12].to_vec();
        match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                f.extend_from_slice(&ipv4_header(a, b, 4, inner.len() - 14, 64, 0, false));
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                f.extend_from_slice(&ipv6_header(a, b, 41, inner.len() - 14, 64));
            }
            _ => unreachable!("one family"),
        }
        f.extend_from_slice(&inner[14..]);
        f[..6].copy_from_slice(&ext.mac);
        f[6..12].copy_from_slice(&ext.peer);
        (f, ext.ifindex, "IP-in-IP".into())
    }

    /// One valid frame of each kind (untagged), for truncation sweeps.
    pub fn bases(&mut self) -> Vec<Case> {
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..2000 {
            let (frame, ifindex, what) = self.base();
            seen.entry(what.clone()).or_insert(Case {
                frame,
                ifindex,
                what,
            });
        }
        seen.into_values().collect()
    }

    /// The next frame: a base, modified, then mutated.
    pub fn next_case(&mut self) -> Case {
        let (mut f, mut ifindex, mut what) = self.base();
        let v6 = f.len() > 13 && f[12..14] == [0x86, 0xdd];
        let ip = f.len() > 13 && (f[12..14] == [0x08, 0x00] || v6);
        if ip && self.chance(20) {
            let ttl = self.pick(&[0u8, 1, 1, 2, 255]);
            f[if v6 { 21 } else { 22 }] = ttl;
            fix_ip_checksum(&mut f);
            what += &format!(", TTL {ttl}");
        }
        if ip && !v6 && self.chance(10) {
            let n = 4 * (1 + self.below(10));
            let opts: Vec<u8> = (0..n)
                .map(|_| self.pick(&[1u8, 1, 1, 0, 7, 0x44, 0x94]))
                .collect();
            f = with_ip_options(&f, &opts);
            what += ", IP options";
        }
        if ip && v6 && self.chance(10) {
            let nh = f[20];
            f[20] = self.pick(&[0u8, 43, 44, 60, 51]);
            let plen = u16::from_be_bytes([f[18], f[19]]).wrapping_add(8);
            f[18..20].copy_from_slice(&plen.to_be_bytes());
            let mut ext = vec![nh, 0, 0, 0, 0, 0, 0, 0];
            ext[2..].iter_mut().for_each(|b| *b = 0);
            f.splice(54..54, ext);
            what += ", extension header";
        }
        if ip && !v6 && self.chance(7) {
            let frag = self.pick(&[0x2000u16, 0x2001, 0x0001, 0x00b9, 0x3fff]);
            let old = u16::from_be_bytes([f[20], f[21]]) & 0xc000;
            f[20..22].copy_from_slice(&(old | frag).to_be_bytes());
            fix_ip_checksum(&mut f);
            what += ", fragment";
        }
        if self.chance(7) {
            let m = self.pick(&[
                [0xff; 6],
                [0x01, 0x00, 0x5e, 0, 0, 1],
                [0x33, 0x33, 0, 0, 0, 1],
                [0x02, 0, 0, 0, 0x99, 0x99],
            ]);
            f[..6].copy_from_slice(&m);
            what += ", foreign MAC";
        }
        if self.chance(10) {
            let tci = (self.byte() as u16) << 8 | self.byte() as u16;
            let mut t = f[..12].to_vec();
            t.extend_from_slice(&[0x81, 0x00]);
            t.extend_from_slice(&tci.to_be_bytes());
            t.extend_from_slice(&f[12..]);
            f = t;
            what += ", VLAN tag";
        }
        let mutations = self.pick(&[0usize, 1, 1, 1, 2, 3]);
        for _ in 0..mutations {
            what += &self.mutate(&mut f);
        }
        if mutations > 0 && self.chance(50) {
            fix_ip_checksum(&mut f);
        }
        if mutations > 0 && self.chance(30) {
            fix_l4_checksum(&mut f);
        }
        if self.chance(5) {
            ifindex = if ifindex == self.world.ext.ifindex {
                self.world.int.ifindex
            } else {
                self.world.ext.ifindex
            };
            what += ", other link";
        }
        Case {
            frame: f,
            ifindex,
            what,
        }
    }

    /// One mutation of `f`; returns its description.
    fn mutate(&mut self, f: &mut Vec<u8>) -> String {
        if f.is_empty() {
            return String::new();
        }
        let v = view(f);
        match self.below(6) {
            0 => {
                let i = self.below(f.len());
                f[i] ^= 1 << self.below(8);
                format!(", bit flipped at {i}")
            }
            1 | 2 => {
                // A byte a parser reads.
                let (l3, l4) = v.as_ref().map_or((14, 34), |v| (v.l3, v.l4));
                let offs = [
                    12,
                    13,
                    l3,
                    l3 + 2,
                    l3 + 3,
                    l3 + 4,
                    l3 + 5,
                    l3 + 6,
                    l3 + 7,
                    l3 + 8,
                    l3 + 9,
                    l4,
                    l4 + 1,
                    l4 + 2,
                    l4 + 4,
                    l4 + 5,
                    l4 + 8,
                    l4 + 12,
                    l4 + 13,
                ];
                let i = self.pick(&offs);
                if i < f.len() {
                    f[i] = self.byte();
                }
                format!(", byte {i} set")
            }
            3 => {
                let n = self.below(f.len());
                f.truncate(n);
                format!(", truncated to {n}")
            }
            4 => {
                let n = 1 + self.below(40);
                f.extend((0..n).map(|_| self.byte()));
                format!(", {n} bytes appended")
            }
            _ => {
                // A wrong IP length.
                let Some(v) = v else { return String::new() };
                let at = if v.v6 { v.l3 + 4 } else { v.l3 + 2 };
                let len = v.end - v.l3;
                let new = match self.below(4) {
                    0 => len.saturating_sub(1 + self.below(len.max(1))),
                    1 => len + 1 + self.below(100),
                    2 => 0,
                    _ => 0xffff,
                } as u16;
                if at + 2 <= f.len() {
                    f[at..at + 2].copy_from_slice(&new.to_be_bytes());
                }
                format!(", IP length {new}")
            }
        }
    }
}
