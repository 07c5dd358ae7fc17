//! The data path's fuzzer: a seeded generator of hostile frames and the
//! invariants every output of the director (and of `lvs decap`) must meet,
//! shared by the bounded test (`lvs-user/tests/it/fuzz.rs`, in
//! `cargo xtask test`) and `cargo xtask fuzz --frames N [--seed S]`.
//!
//! - [`World`]: what the director under test serves (services, methods,
//!   real servers, link MACs, the client and routers), as data, so the
//!   checker knows which frames are a service's without asking the
//!   director.
//! - [`gen`]: valid frames of every kind the director meets, then mutated
//!   (bytes flipped or set at the offsets parsers read, truncations, wrong
//!   lengths, flag combinations, VLAN tags, fragments, IP options,
//!   extension headers, foreign MACs, TTLs 0–2); reproducible from a seed.
//! - [`check`]: the invariants for one frame's run.
//!
//! lvs-lab knows nothing of the director: the caller runs each frame (with
//! BPF_PROG_TEST_RUN) and hands the checker the action, the output frame
//! and the counters' deltas.

pub mod check;
pub mod gen;
pub mod view;

use std::net::IpAddr;

use crate::packet::Mac;

/// Forwarding method of a service's real servers (one per service here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Nat,
    Dr,
    Tun,
}

/// One virtual service of the world.
#[derive(Clone, Debug)]
pub struct Service {
    pub proto: u8,
    pub vip: IpAddr,
    pub port: u16,
    pub method: Method,
    /// Real servers (address, port).
    pub reals: Vec<(IpAddr, u16)>,
}

/// A link of the director: its ifindex and MAC, and who talks to it.
#[derive(Clone, Debug)]
pub struct Link {
    pub ifindex: u32,
    pub mac: Mac,
    /// The MAC frames to this link come from.
    pub peer: Mac,
}

/// What the director under test serves, and the hosts around it.
#[derive(Clone, Debug)]
pub struct World {
    pub services: Vec<Service>,
    /// The client side (VIPs, clients).
    pub ext: Link,
    /// The real servers' side.
    pub int: Link,
    /// Clients (one per family).
    pub clients: Vec<IpAddr>,
    /// Routers that send ICMP errors (one per family and side).
    pub routers: Vec<IpAddr>,
    /// Client ports with a connection opened before fuzzing (NAT replies
    /// and ICMP errors about them are tracked).
    pub tracked_ports: Vec<u16>,
    /// `lvs decap`'s own addresses (outer destinations it strips).
    pub decap_addrs: Vec<IpAddr>,
}

impl World {
    /// The service `proto` `dst`:`dport` is addressed to, if any.
    pub fn service(&self, proto: u8, dst: IpAddr, dport: u16) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.proto == proto && s.vip == dst && s.port == dport)
    }

    /// The NAT service whose real server `src`:`sport` is, if any.
    pub fn nat_real(&self, proto: u8, src: IpAddr, sport: u16) -> Option<&Service> {
        self.services.iter().find(|s| {
            s.proto == proto && s.method == Method::Nat && s.reals.contains(&(src, sport))
        })
    }

    /// Whether `a` is a TUN service's real server.
    pub fn tun_real(&self, a: IpAddr) -> bool {
        self.services
            .iter()
            .any(|s| s.method == Method::Tun && s.reals.iter().any(|r| r.0 == a))
    }
}
