//! The invariants of one frame's run through the director or `lvs decap`.
//!
//! Director:
//! - never XDP_ABORTED; `rx` moved by one and exactly one terminal counter;
//! - a frame that is not a service's, not a NAT real server's reply and
//!   not an ICMP error quoting one of those comes out byte-identical with
//!   XDP_PASS (and so does every XDP_PASS, but for `nat_fwd_fib_pass`);
//! - a frame sent on (XDP_TX / redirect) was addressed to the link's MAC,
//!   whole, no fragment, with a valid IPv4 header checksum, and is either
//!   the director's own answer (time exceeded when the TTL was <= 1, too
//!   big otherwise: from the address it was sent to, valid checksums,
//!   quoting it) or forwarded: a valid IP header checksum, TTL / hop limit
//!   exactly one less (TUN: the inner header's; the outer one 64), an L4
//!   checksum valid exactly when it was valid on input, and its 5-tuple
//!   rewritten only as the method allows (NAT: the destination to one of
//!   the service's real servers, or a reply's source to the VIP; DR:
//!   none; TUN: the packet unchanged inside an outer header to a real
//!   server).
//!
//! Decap: always XDP_PASS, `rx` and one of `decap`/`not_ours` moved; the
//! output is the input, or for IP-in-IP to one of its addresses the input
//! without its outer header.

use super::{
    gen::Case,
    view::{fix_ip_checksum, view, View, ICMP, ICMPV6, IPIP, IPV6_IN_IP},
    Method, World,
};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// The director counters one run moved: `rx`, and each terminal counter
/// that moved, by name (`lvs_common::counters::NAMES`) and amount.
#[derive(Clone, Debug, Default)]
pub struct Moved {
    pub rx: u64,
    pub terminal: Vec<(&'static str, u64)>,
}

impl Moved {
    fn has(&self, name: &str) -> bool {
        self.terminal.iter().any(|(n, _)| *n == name)
    }
}

/// What happened to a frame, for the run's summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Passed,
    Dropped,
    Forwarded,
    Answered,
}

type Verdict = Result<Outcome, String>;

/// Whether the frame may be the director's business: addressed to a
/// service, from a NAT real server, or an ICMP error quoting either
/// direction of one.
pub fn ours(w: &World, f: &[u8]) -> bool {
    let Some(v) = view(f) else { return false };
    if w.service(v.proto, v.dst, v.dport).is_some() || w.nat_real(v.proto, v.src, v.sport).is_some()
    {
        return true;
    }
    matches!(v.proto, ICMP | ICMPV6)
        && v.quoted(f).is_some_and(|q| {
            w.service(q.proto, q.src, q.sport).is_some()
                || w.nat_real(q.proto, q.dst, q.dport).is_some()
                || w.service(q.proto, q.dst, q.dport).is_some()
        })
}

/// Checks one run of the director on `case`.
pub fn director(w: &World, case: &Case, action: u32, out: &[u8], moved: &Moved) -> Verdict {
    let inp = &case.frame;
    if !(XDP_DROP..=XDP_REDIRECT).contains(&action) {
        return Err(format!("action {action} (XDP_ABORTED is 0)"));
    }
    let total: u64 = moved.terminal.iter().map(|(_, n)| n).sum();
    if moved.rx != 1 || total != 1 {
        return Err(format!(
            "rx moved by {}, terminal counters {:?}: want 1 and exactly one",
            moved.rx, moved.terminal
        ));
    }
    let mine = ours(w, inp);
    if action == XDP_PASS {
        if out == inp.as_slice() {
            return Ok(Outcome::Passed);
        }
        if mine && moved.has("nat_fwd_fib_pass") {
            let v = view(out).ok_or("a rewritten pass that does not parse")?;
            return v
                .ip_csum_ok(out)
                .then_some(Outcome::Passed)
                .ok_or_else(|| "a rewritten pass with a bad IP header checksum".into());
        }
        return Err("XDP_PASS of a modified frame".into());
    }
    if !mine {
        return Err(format!(
            "not a service's, a reply's or a tracked error's, yet action {action}"
        ));
    }
    if action == XDP_DROP {
        return Ok(Outcome::Dropped);
    }
    sent(w, case, out, moved)
}

/// A frame the director sent on (XDP_TX / redirect).
fn sent(w: &World, case: &Case, out: &[u8], moved: &Moved) -> Verdict {
    let inp = &case.frame;
    let link = if case.ifindex == w.ext.ifindex {
        &w.ext
    } else {
        &w.int
    };
    if inp[..6] != link.mac {
        return Err("sent on, but not addressed to the link's MAC".into());
    }
    let i = view(inp).ok_or("sent on, but the input is not IP")?;
    if !i.whole || i.fragment || !i.ip_csum_ok(inp) {
        return Err(format!(
            "sent on, but the input is cut ({}), a fragment ({}) or has a bad header checksum",
            !i.whole, i.fragment
        ));
    }
    let o = view(out).ok_or("the output is not IP")?;
    if !o.ip_csum_ok(out) {
        return Err("output IP header checksum is bad".into());
    }
    let answer = !matches!(i.proto, ICMP | ICMPV6) && matches!(o.proto, ICMP | ICMPV6);
    if answer {
        return answered(inp, &i, out, &o, moved);
    }
    if i.ttl <= 1 {
        return Err(format!("forwarded with TTL {}", i.ttl));
    }
    if matches!(o.proto, IPIP | IPV6_IN_IP) && !matches!(i.proto, IPIP | IPV6_IN_IP) {
        return tunnelled(w, inp, &i, out, &o);
    }
    if o.ttl != i.ttl - 1 {
        return Err(format!("TTL {} forwarded as {}", i.ttl, o.ttl));
    }
    if i.l4_csum_ok(inp) != o.l4_csum_ok(out) {
        return Err(format!(
            "L4 checksum valid {:?} on input, {:?} on output",
            i.l4_csum_ok(inp),
            o.l4_csum_ok(out)
        ));
    }
    if matches!(i.proto, ICMP | ICMPV6) {
        // A translated error: the outer addresses are the connection's.
        o.quoted(out)
            .ok_or("a forwarded ICMP error quotes nothing")?;
        return Ok(Outcome::Forwarded);
    }
    rewritten(w, inp, &i, out, &o)
}

/// The director's own ICMP answer to the input.
fn answered(inp: &[u8], i: &View, out: &[u8], o: &View, moved: &Moved) -> Verdict {
    let t = o.icmp_type(out).ok_or("an answer without an ICMP type")?;
    let (want, counter) = match (i.ttl <= 1, i.v6) {
        (true, false) => (11, "ttl_exceeded"),
        (true, true) => (3, "ttl_exceeded"),
        (false, false) => (3, "icmp_too_big"),
        (false, true) => (2, "icmp_too_big"),
    };
    if t != want || !moved.has(counter) {
        return Err(format!(
            "answered TTL {} with ICMP type {t}, counted {:?}",
            i.ttl, moved.terminal
        ));
    }
    if (o.src, o.dst) != (i.dst, i.src) || o.l4_csum_ok(out) != Some(true) {
        return Err("an answer not from the destination to the source, or a bad checksum".into());
    }
    let n = if i.v6 { 48 } else { 28 };
    if out.get(o.l4 + 8..o.l4 + 8 + n) != inp.get(i.l3..i.l3 + n) {
        return Err("the answer does not quote the packet".into());
    }
    Ok(Outcome::Answered)
}

/// The input frame as a router forwards it: TTL one less, the header
/// checksum made anew (the input's was checked valid), the rest as it was.
fn forwarded(inp: &[u8], i: &View) -> Vec<u8> {
    let mut f = inp.to_vec();
    f[i.l3 + if i.v6 { 7 } else { 8 }] -= 1;
    fix_ip_checksum(&mut f);
    f
}

fn tunnelled(w: &World, inp: &[u8], i: &View, out: &[u8], o: &View) -> Verdict {
    if o.ttl != 64 || !w.tun_real(o.dst) {
        return Err(format!("outer TTL {} to {}", o.ttl, o.dst));
    }
    if out[o.l4..] != forwarded(inp, i)[i.l3..] {
        return Err("the tunnelled packet is not the input with its TTL one less".into());
    }
    let s = w.service(i.proto, i.dst, i.dport);
    if !s.is_some_and(|s| s.method == Method::Tun) && !matches!(i.proto, ICMP | ICMPV6) {
        return Err("tunnelled, but not a TUN service's packet".into());
    }
    Ok(Outcome::Forwarded)
}

fn rewritten(w: &World, inp: &[u8], i: &View, out: &[u8], o: &View) -> Verdict {
    let same_src = (o.src, o.sport) == (i.src, i.sport);
    let same_dst = (o.dst, o.dport) == (i.dst, i.dport);
    let ok = match w.service(i.proto, i.dst, i.dport) {
        Some(s) => match s.method {
            Method::Nat => same_src && s.reals.contains(&(o.dst, o.dport)),
            // Only the MACs (and the TTL).
            Method::Dr => same_src && same_dst && out.get(12..) == forwarded(inp, i).get(12..),
            Method::Tun => false,
        },
        None => match w.nat_real(i.proto, i.src, i.sport) {
            Some(s) => same_dst && (o.src, o.sport) == (s.vip, s.port),
            None => false,
        },
    };
    if !ok {
        return Err(format!(
            "{}:{} -> {}:{} forwarded as {}:{} -> {}:{}",
            i.src, i.sport, i.dst, i.dport, o.src, o.sport, o.dst, o.dport
        ));
    }
    Ok(Outcome::Forwarded)
}

/// Checks one run of `lvs decap` on `case`: `moved` are its counters'
/// deltas (rx, decap, not_ours).
pub fn decap(w: &World, case: &Case, action: u32, out: &[u8], moved: [u64; 3]) -> Verdict {
    let inp = &case.frame;
    if action != XDP_PASS {
        return Err(format!("decap returned {action}, always XDP_PASS"));
    }
    if moved[0] != 1 || moved[1] + moved[2] != 1 {
        return Err(format!("decap counters moved {moved:?}"));
    }
    if moved[2] == 1 {
        return if out == inp.as_slice() {
            Ok(Outcome::Passed)
        } else {
            Err("decap changed a frame it counted not ours".into())
        };
    }
    let i = view(inp).ok_or("decapsulated a frame that is not IP")?;
    let tunnel = (!i.v6 && i.proto == IPIP) || (i.v6 && i.proto == IPV6_IN_IP);
    if i.tagged || !tunnel || !w.decap_addrs.contains(&i.dst) {
        return Err("decapsulated a frame that is no tunnel to its addresses".into());
    }
    let et: &[u8] = if i.proto == IPIP {
        &[8, 0]
    } else {
        &[0x86, 0xdd]
    };
    let want: Vec<u8> = inp[..12]
        .iter()
        .chain(et)
        .chain(&inp[i.l3 + i.ihl..])
        .copied()
        .collect();
    if out != want.as_slice() {
        return Err("decap's output is not the inner packet".into());
    }
    Ok(Outcome::Forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fuzz::{Link, Service},
        packet::{dec_ttl, Frame, ACK},
    };
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const EXT: [u8; 6] = [2, 0, 0, 0, 0x47, 0x80];
    const INT: [u8; 6] = [2, 0, 0, 0, 0x21, 0x80];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0x47, 1];
    const RS: [u8; 6] = [2, 0, 0, 0, 0x21, 0x29];

    fn world() -> World {
        World {
            services: vec![Service {
                proto: 6,
                vip: ip("10.0.0.1"),
                port: 80,
                method: Method::Nat,
                reals: vec![(ip("10.1.0.1"), 8080)],
            }],
            ext: Link {
                ifindex: 1,
                mac: EXT,
                peer: PEER,
            },
            int: Link {
                ifindex: 2,
                mac: INT,
                peer: RS,
            },
            clients: vec![ip("10.2.0.1")],
            routers: vec![ip("10.2.0.2")],
            tracked_ports: vec![5000],
            decap_addrs: vec![],
        }
    }

    fn case(f: Frame) -> Case {
        Case {
            frame: f.build(),
            ifindex: 1,
            what: "test".into(),
        }
    }

    fn one(name: &'static str) -> Moved {
        Moved {
            rx: 1,
            terminal: vec![(name, 1)],
        }
    }

    fn to_vip() -> Frame {
        Frame::tcp((ip("10.2.0.1"), 5000), (ip("10.0.0.1"), 80), ACK).macs(PEER, EXT)
    }

    fn dnat(f: &Frame, rs: &str, port: u16) -> Vec<u8> {
        let mut w = f.clone().macs(INT, RS);
        w.dst = ip(rs);
        if let crate::packet::L4::Tcp { dport, .. } = &mut w.l4 {
            *dport = port;
        }
        dec_ttl(&w.build())
    }

    #[test]
    fn a_correct_nat_forward_and_a_pass_are_accepted() {
        let w = world();
        let c = case(to_vip());
        let out = dnat(&to_vip(), "10.1.0.1", 8080);
        assert_eq!(
            director(&w, &c, XDP_REDIRECT, &out, &one("nat_fwd")),
            Ok(Outcome::Forwarded)
        );
        assert_eq!(
            director(&w, &c, XDP_PASS, &c.frame, &one("pass")),
            Ok(Outcome::Passed)
        );
    }

    #[test]
    fn broken_outputs_are_refused() {
        let w = world();
        let c = case(to_vip());
        let good = dnat(&to_vip(), "10.1.0.1", 8080);
        // The TTL not decremented.
        let mut same_ttl = to_vip().macs(INT, RS);
        same_ttl.dst = ip("10.1.0.1");
        if let crate::packet::L4::Tcp { dport, .. } = &mut same_ttl.l4 {
            *dport = 8080;
        }
        let bad = [
            ("same TTL", same_ttl.build()),
            ("not a real server", dnat(&to_vip(), "10.1.0.9", 8080)),
            ("another port", dnat(&to_vip(), "10.1.0.1", 8081)),
            ("a broken L4 checksum", {
                let mut b = good.clone();
                b[14 + 20 + 16] ^= 1;
                b
            }),
            ("a broken IP checksum", {
                let mut b = good.clone();
                b[14 + 10] ^= 1;
                b
            }),
        ];
        for (name, out) in bad {
            assert!(
                director(&w, &c, XDP_REDIRECT, &out, &one("nat_fwd")).is_err(),
                "{name}"
            );
        }
        for m in [
            Moved::default(),
            Moved {
                rx: 1,
                terminal: vec![("nat_fwd", 1), ("dr_fwd", 1)],
            },
        ] {
            assert!(director(&w, &c, XDP_REDIRECT, &good, &m).is_err(), "{m:?}");
        }
        assert!(
            director(&w, &c, 0, &good, &one("nat_fwd")).is_err(),
            "ABORTED"
        );
        // A frame that is no service's: passed untouched, or it is a fault.
        let other =
            case(Frame::tcp((ip("10.2.0.1"), 5000), (ip("10.0.0.1"), 22), ACK).macs(PEER, EXT));
        assert!(director(&w, &other, XDP_DROP, &other.frame, &one("pass")).is_err());
        let mut changed = other.frame.clone();
        changed[0] ^= 1;
        assert!(director(&w, &other, XDP_PASS, &changed, &one("pass")).is_err());
        // Forwarded at TTL 1.
        let mut t1 = to_vip();
        t1.ttl = 1;
        let c1 = case(t1.clone());
        let mut out = t1.clone().macs(INT, RS);
        out.dst = ip("10.1.0.1");
        assert!(director(&w, &c1, XDP_REDIRECT, &out.build(), &one("nat_fwd")).is_err());
    }
}
