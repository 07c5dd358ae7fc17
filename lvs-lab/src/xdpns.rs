//! A namespace laid out for running XDP programs with BPF_PROG_TEST_RUN:
//! the links the program is told frames arrive on (veth pairs whose peers
//! stay in the same namespace), fixed MACs and addresses, permanent
//! neighbour entries so that `bpf_fib_lookup` gives known answers, and
//! forwarding on. A [`Plan`] says what to build; [`Plan::seed`] and
//! [`Plan::lan`] are the two layouts of the tests, the benchmark builds its
//! own.
//!
//! [`XdpNs`] is the fixture: it owns the lab (the namespace and the pin
//! directory) and carries what was loaded into it, `D`, which it derefs
//! to. lvs-lab knows nothing of the director: `D` comes from a closure
//! given the pin directory (the tests and `lvs-bench` pass one that loads
//! `lvs::testbed::Director`), and it is dropped before the lab removes the
//! namespace and the pins. Programs must run inside the namespace (the FIB
//! lookups are the namespace's): [`XdpNs::enter`].

use std::{
    fmt::Write as _,
    net::IpAddr,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{
    lab::Lab,
    lan,
    netns::Netns,
    packet::{mac_str, Mac},
    seed,
};

/// The fixed MACs of the plans (locally administered, `02:00:00:00:…`;
/// the fifth byte names the subnet: 0x47 the client's LAN, 0x21 the
/// inside one).
pub mod mac {
    use crate::packet::Mac;

    pub const CLIENT: Mac = [0x02, 0, 0, 0, 0x47, 0x01];
    /// The director's link towards the client (`ext0`, `lan0`).
    pub const DIR_EXT: Mac = [0x02, 0, 0, 0, 0x47, 0x80];
    /// The director's inside link (`int0`).
    pub const DIR_INT: Mac = [0x02, 0, 0, 0, 0x21, 0x80];
    /// The real server behind `int0` in [`super::Plan::seed`].
    pub const RS: Mac = [0x02, 0, 0, 0, 0x21, 0x29];
    /// A DR real server on the client's LAN.
    pub const DR_RS: Mac = [0x02, 0, 0, 0, 0x47, 0x29];
    /// The two LAN real servers of [`super::Plan::lan`].
    pub const LAN_RS: [Mac; 2] = [[0x02, 0, 0, 0, 0x47, 0x81], [0x02, 0, 0, 0, 0x47, 0x82]];
    /// The inside server of [`super::Plan::lan`].
    pub const INSIDE: Mac = [0x02, 0, 0, 0, 0x21, 0x81];
}

/// One link of the program under test: `name` (with `mac` and `addrs`,
/// CIDR strings) and its peer `peer`, both up, in the same namespace.
#[derive(Clone, Debug)]
pub struct Link {
    pub name: String,
    pub peer: String,
    pub mac: Mac,
    pub addrs: Vec<String>,
}

/// A permanent neighbour entry: `addr` is at `mac` on `dev`.
#[derive(Clone, Debug)]
pub struct Neighbour {
    pub addr: IpAddr,
    pub mac: Mac,
    pub dev: String,
}

/// What [`XdpNs::new`] builds.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub links: Vec<Link>,
    pub neighbours: Vec<Neighbour>,
    /// `ip route add` arguments, added last.
    pub routes: Vec<String>,
}

impl Plan {
    pub fn link(mut self, name: &str, peer: &str, mac: Mac, addrs: &[impl AsRef<str>]) -> Plan {
        self.links.push(Link {
            name: name.to_owned(),
            peer: peer.to_owned(),
            mac,
            addrs: addrs.iter().map(|a| a.as_ref().to_owned()).collect(),
        });
        self
    }

    pub fn neighbour(mut self, addr: impl Into<IpAddr>, mac: Mac, dev: &str) -> Plan {
        self.neighbours.push(Neighbour {
            addr: addr.into(),
            mac,
            dev: dev.to_owned(),
        });
        self
    }

    pub fn route(mut self, route: &str) -> Plan {
        self.routes.push(route.to_owned());
        self
    }

    /// The seed tutorial's director (`lvs_lab::seed`): `ext0` with the VIP
    /// 192.168.47.128/24 and 2001:db8:47::128/64 towards the client
    /// (192.168.47.1), `int0` with the DIP 192.168.211.128/24 and
    /// 2001:db8:211::128/64 towards the real server 192.168.211.129.
    pub fn seed() -> Plan {
        let vip = format!("{}/24", seed::VIP);
        let vip6 = format!("{}/64", seed::VIP6);
        let dip = format!("{}/24", seed::DIP);
        let dip6 = format!("{}/64", seed::DIP6);
        Plan::default()
            .link("ext0", "ext1", mac::DIR_EXT, &[&vip, &vip6])
            .link("int0", "int1", mac::DIR_INT, &[&dip, &dip6])
            .neighbour(seed::CLIENT_IP, mac::CLIENT, "ext0")
            .neighbour(seed::CLIENT_IP6, mac::CLIENT, "ext0")
            .neighbour(seed::rs_ip(0), mac::RS, "int0")
            .neighbour(seed::rs_ip6(0), mac::RS, "int0")
    }

    /// The DR/TUN LAN's director (`lvs_lab::lan`): `lan0` with the DIP
    /// 192.168.47.128/24 and the VIP 192.168.47.200/32 (2001:db8:47::128/64
    /// and ::200/128), `int0` with 192.168.211.128/24 and
    /// 2001:db8:211::128/64; neighbours for the client, the two LAN real
    /// servers and the first inside server.
    pub fn lan() -> Plan {
        let lan0 = [
            format!("{}/24", lan::DIP),
            format!("{}/32", lan::VIP),
            format!("{}/64", lan::DIP6),
            format!("{}/128", lan::VIP6),
        ];
        let int0 = [
            format!("{}/24", lan::INSIDE_DIP),
            format!("{}/64", lan::INSIDE_DIP6),
        ];
        let mut p = Plan::default()
            .link("lan0", "lan1", mac::DIR_EXT, &lan0)
            .link("int0", "int1", mac::DIR_INT, &int0)
            .neighbour(lan::CLIENT_IP, mac::CLIENT, "lan0")
            .neighbour(lan::CLIENT_IP6, mac::CLIENT, "lan0")
            .neighbour(lan::inside_ip(0), mac::INSIDE, "int0")
            .neighbour(lan::inside_ip6(0), mac::INSIDE, "int0");
        for (i, m) in mac::LAN_RS.iter().enumerate() {
            p = p
                .neighbour(lan::rs_ip(i), *m, "lan0")
                .neighbour(lan::rs_ip6(i), *m, "lan0");
        }
        p
    }

    /// The commands that build the plan, for `sh` (stopping at the first
    /// that fails). IPv4 forwarding is always on, IPv6 forwarding when a
    /// link has an IPv6 address; IPv6 addresses skip duplicate detection.
    pub fn script(&self) -> String {
        let mut s = String::from("set -e\n");
        let mut v6 = false;
        for l in &self.links {
            let (a, b) = (&l.name, &l.peer);
            let _ = writeln!(s, "ip link add name {a} type veth peer name {b}");
            let _ = writeln!(s, "ip link set {a} address {} up", mac_str(&l.mac));
            let _ = writeln!(s, "ip link set {b} up");
            for addr in &l.addrs {
                let nodad = if addr.contains(':') { " nodad" } else { "" };
                v6 |= addr.contains(':');
                let _ = writeln!(s, "ip addr add {addr} dev {a}{nodad}");
            }
        }
        for n in &self.neighbours {
            let _ = writeln!(
                s,
                "ip neigh replace {} lladdr {} dev {} nud permanent",
                n.addr,
                mac_str(&n.mac),
                n.dev
            );
        }
        s += "sysctl -qw net.ipv4.ip_forward=1\n";
        if v6 {
            s += "sysctl -qw net.ipv6.conf.all.forwarding=1\n";
        }
        for r in &self.routes {
            let _ = writeln!(s, "ip route add {r}");
        }
        s
    }
}

/// A namespace built from a [`Plan`], its pin directory, and what was
/// loaded into it (`D`, reachable through `Deref`).
pub struct XdpNs<D> {
    // Fields drop in order: what was loaded goes before the lab removes
    // the namespace and the pin directory.
    loaded: D,
    pub ns: Netns,
    /// The lab's pin directory (below /sys/fs/bpf), given to `load`.
    pub pin: PathBuf,
    /// Interface index of each of the plan's links.
    links: Vec<(String, u32)>,
    lab: Lab,
}

impl<D> XdpNs<D> {
    /// A lab tagged `tag` with one namespace built from `plan`, then
    /// `load(pin dir)`.
    pub fn new(tag: &str, plan: &Plan, load: impl FnOnce(&Path) -> Result<D>) -> Result<Self> {
        let lab = Lab::new(tag)?;
        let ns = lab.ns("d")?;
        ns.sh(&plan.script())
            .context("setting up the BPF_PROG_TEST_RUN namespace")?;
        let links = plan
            .links
            .iter()
            .map(|l| Ok((l.name.clone(), ns.ifindex(&l.name)?)))
            .collect::<Result<_>>()?;
        let pin = lab.pin_dir()?;
        let loaded = load(&pin)?;
        Ok(XdpNs {
            loaded,
            ns,
            pin,
            links,
            lab,
        })
    }

    /// The interface index of the plan's link `name`, as looked up
    /// ([`Netns::ifindex`]) when the namespace was built; panics for a
    /// name the plan does not have.
    pub fn link_index(&self, name: &str) -> u32 {
        self.links
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| *i)
            .unwrap_or_else(|| panic!("the plan has no link {name}"))
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        self.ns.enter(f)
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Permanent neighbour entries on `dev` for `addrs`, all at `mac` (one
    /// `ip -batch`, for thousands).
    pub fn add_neighbours(
        &self,
        addrs: impl IntoIterator<Item = impl Into<IpAddr>>,
        mac: &Mac,
        dev: &str,
    ) -> Result<()> {
        let mut batch = String::new();
        for a in addrs {
            let _ = writeln!(
                batch,
                "neigh replace {} lladdr {} dev {dev} nud permanent",
                a.into(),
                mac_str(mac)
            );
        }
        let path = self.lab.workdir().join("neigh.batch");
        std::fs::write(&path, batch)?;
        self.ns
            .run(&["ip", "-batch", &path.to_string_lossy()])
            .map(drop)
    }
}

impl<D> Deref for XdpNs<D> {
    type Target = D;
    fn deref(&self) -> &D {
        &self.loaded
    }
}

impl<D> DerefMut for XdpNs<D> {
    fn deref_mut(&mut self) -> &mut D {
        &mut self.loaded
    }
}
