//! Keeping next hops' neighbour entries resolved ahead of traffic, so the
//! XDP program's `bpf_fib_lookup` finds their MACs: those of the real
//! servers, of the routers on the director's links, and of destinations
//! the data path reported missing (`NEIGH_MISS`).
//!
//! Where a next hop has no entry we install a *managed* one (kernel ≥
//! 5.16): the kernel then resolves it and keeps it fresh by itself, with no
//! traffic of ours. The next hop is the real server or, when it is routed,
//! its gateway.
//!
//! Entries we did not make are not ours: a permanent or noarp entry (static
//! ARP, common on DR segments where real servers may not answer ARP), an
//! externally learnt or someone else's managed entry, or one the kernel
//! learnt, are left exactly as they are, and never deleted. The one
//! exception is a kernel-learnt entry that has FAILED: it carries no
//! address, nothing but kernel traffic would ever resolve it again, and the
//! data path would drop every packet for that next hop; it is replaced by a
//! managed entry of ours. Our entries carry neighbour protocol [`PROTO`],
//! so a later `lvs load` (after a restart) knows them for ours, and
//! `lvs unload` can delete them; a daemon that stops leaves them in place
//! for the director that goes on forwarding. What is deleted is only what
//! is still as we made it (an operator who made one of them permanent
//! meanwhile keeps it).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    process::Command,
};

use anyhow::{bail, Context, Result};

/// The neighbour protocol (`NDA_PROTOCOL`, `ip neigh … protocol N`) of
/// the entries `lvs load` makes: not one of iproute2's named protocols.
pub const PROTO: &str = "247";

/// A next hop: (address, device).
type Hop = (IpAddr, String);

/// The neighbour entries this process made, and the next hops it found
/// with entries of someone else's.
#[derive(Default)]
pub struct Neighbours {
    /// Managed entries we added: kept, and deleted on the way out.
    ours: HashSet<Hop>,
    /// Next hops whose entry is not ours (logged once).
    foreign: HashSet<Hop>,
}

/// One entry of `ip -o neigh show nud all`: whether it has a link-layer
/// address, and the flags and states printed after it (`router`,
/// `extern_learn`, `managed`, `PERMANENT`, `STALE`, `FAILED`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub lladdr: bool,
    pub words: Vec<String>,
}

impl Entry {
    fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// Made by an operator (or a daemon) as a fixed address.
    pub fn is_static(&self) -> bool {
        self.has("PERMANENT") || self.has("NOARP")
    }

    pub fn is_managed(&self) -> bool {
        self.has("managed")
    }

    /// Made by an `lvs load` and still as it made it (managed, with our
    /// protocol, not made static since).
    pub fn is_lvs(&self) -> bool {
        self.is_managed()
            && !self.is_static()
            && self
                .words
                .windows(2)
                .any(|w| w[0] == "proto" && w[1] == PROTO)
    }

    /// The kernel's own entry (learnt by ARP/NDP), failed to resolve.
    pub fn is_failed_learnt(&self) -> bool {
        self.has("FAILED")
            && !self.lladdr
            && !self.is_static()
            && !self.is_managed()
            && !self.has("extern_learn")
    }

    /// The words as `ip` printed them, for messages.
    fn describe(&self) -> String {
        self.words.join(" ")
    }
}

/// The neighbour table, by (address, device).
pub type Table = HashMap<Hop, Entry>;

/// Parses `ip -o neigh show nud all`.
pub fn parse_neigh_show(text: &str) -> Table {
    let mut table = Table::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let Some(Ok(addr)) = w.first().map(|a| a.parse::<IpAddr>()) else {
            continue;
        };
        let Some(d) = w.iter().position(|x| *x == "dev") else {
            continue;
        };
        let Some(dev) = w.get(d + 1) else { continue };
        let mut lladdr = false;
        let mut words = Vec::new();
        let mut rest = w[d + 2..].iter();
        while let Some(x) = rest.next() {
            if *x == "lladdr" {
                lladdr = rest.next().is_some();
            } else {
                words.push(x.to_string());
            }
        }
        table.insert((addr, dev.to_string()), Entry { lladdr, words });
    }
    table
}

/// Every neighbour entry of this namespace, noarp ones included.
fn read_table() -> Result<Table> {
    let out = Command::new("ip")
        .args(["-o", "neigh", "show", "nud", "all"])
        .output()
        .context("running `ip neigh show`")?;
    if !out.status.success() {
        bail!(
            "`ip neigh show` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_neigh_show(&String::from_utf8_lossy(&out.stdout)))
}

/// What to do about one next hop.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Ours and as we made it.
    Keep,
    /// No entry: add a managed one (exclusively, so an entry someone adds
    /// meanwhile wins).
    Add,
    /// A kernel-learnt entry that failed: replace it with a managed one.
    Replace,
    /// Someone else's entry: leave it alone.
    Leave,
    /// Was ours, but the operator has changed it: no longer ours.
    Disown,
}

/// The rule, for a next hop that is `ours` (or not) with `entry`.
pub fn decide(ours: bool, entry: Option<&Entry>) -> Action {
    match entry {
        None => Action::Add,
        Some(e) if ours && e.is_managed() && !e.is_static() => Action::Keep,
        Some(_) if ours => Action::Disown,
        Some(e) if e.is_failed_learnt() => Action::Replace,
        Some(_) => Action::Leave,
    }
}

/// Next hop and device for `addr`, from `ip route get`.
fn next_hop(addr: IpAddr) -> Result<Hop> {
    let out = Command::new("ip")
        .args(["-o", "route", "get", &addr.to_string()])
        .output()
        .context("running `ip route get`")?;
    if !out.status.success() {
        bail!(
            "no route to {addr}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_route_get(addr, &String::from_utf8_lossy(&out.stdout))
}

/// Parses one line of `ip -o route get` (`ADDR [via GW] dev DEV ...`).
fn parse_route_get(addr: IpAddr, line: &str) -> Result<Hop> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |k: &str| words.windows(2).find(|w| w[0] == k).map(|w| w[1]);
    let dev = after("dev").context("`ip route get` printed no device")?;
    if words.first() == Some(&"local") || dev == "lo" {
        bail!("{addr} is a local address");
    }
    let hop = match after("via") {
        Some(gw) => gw.parse().context("bad gateway in `ip route get`")?,
        None => addr,
    };
    Ok((hop, dev.to_string()))
}

/// Gateways of the routes that leave through `ifaces` (IPv4 and IPv6).
pub fn gateways(ifaces: &[String]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        let Ok(o) = Command::new("ip")
            .args([fam, "-o", "route", "show"])
            .output()
        else {
            continue;
        };
        out.extend(parse_gateways(&String::from_utf8_lossy(&o.stdout), ifaces));
    }
    out.sort();
    out.dedup();
    out
}

fn parse_gateways(text: &str, ifaces: &[String]) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| w.windows(2).find(|x| x[0] == k).map(|x| x[1]);
            let dev = after("dev")?;
            if !ifaces.iter().any(|i| i == dev) {
                return None;
            }
            after("via")?.parse().ok()
        })
        .collect()
}

impl Neighbours {
    /// Makes sure the next hop of each of `addrs` has a neighbour entry
    /// the kernel keeps resolved: ours (managed) where there was none, or
    /// whatever someone else put there. Returns what went wrong.
    pub fn ensure(&mut self, addrs: &[IpAddr]) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        if addrs.is_empty() {
            return errors;
        }
        let table = match read_table() {
            Ok(t) => t,
            Err(e) => return vec![e],
        };
        let mut hops: Vec<(Hop, IpAddr)> = Vec::new();
        for &addr in addrs {
            match next_hop(addr) {
                Ok(hop) if !hops.iter().any(|(h, _)| *h == hop) => hops.push((hop, addr)),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        for (hop, addr) in hops {
            if let Err(e) = self.ensure_hop(&table, hop, addr) {
                errors.push(e);
            }
        }
        errors
    }

    fn ensure_hop(&mut self, table: &Table, hop: Hop, addr: IpAddr) -> Result<()> {
        let entry = table.get(&hop);
        let (ip, dev) = (hop.0.to_string(), hop.1.clone());
        let dev = dev.as_str();
        // An entry an earlier `lvs load` made is ours too.
        let ours = self.ours.contains(&hop) || entry.is_some_and(Entry::is_lvs);
        match decide(ours, entry) {
            Action::Keep => {
                self.ours.insert(hop);
            }
            Action::Add => {
                let out = Command::new("ip")
                    .args([
                        "neigh", "add", &ip, "dev", dev, "managed", "protocol", PROTO,
                    ])
                    .output()
                    .context("running `ip neigh add`")?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    // Someone added one since we looked: theirs (seen next
                    // time).
                    if err.contains("File exists") {
                        return Ok(());
                    }
                    bail!(
                        "cannot add a managed neighbour for {ip} on {dev}: {}",
                        err.trim()
                    );
                }
                log::info!("neighbour {ip} on {dev} is kept resolved (for {addr})");
                self.foreign.remove(&hop);
                self.ours.insert(hop);
            }
            Action::Replace => {
                let out = Command::new("ip")
                    .args([
                        "neigh", "replace", &ip, "dev", dev, "managed", "protocol", PROTO,
                    ])
                    .output()
                    .context("running `ip neigh replace`")?;
                if !out.status.success() {
                    bail!(
                        "cannot replace the failed neighbour {ip} on {dev}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                log::info!("neighbour {ip} on {dev} had failed; now kept resolved (for {addr})");
                self.foreign.remove(&hop);
                self.ours.insert(hop);
            }
            Action::Disown => {
                let what = entry.map(Entry::describe).unwrap_or_default();
                log::info!("neighbour {ip} on {dev} was changed ({what}); no longer ours");
                self.ours.remove(&hop);
                self.foreign.insert(hop);
            }
            Action::Leave => {
                if self.foreign.insert(hop) {
                    let what = entry.map(Entry::describe).unwrap_or_default();
                    log::info!(
                        "neighbour {ip} on {dev} is not ours ({what}); left as it is (for {addr})"
                    );
                }
            }
        }
        Ok(())
    }

    /// Waits (at most `timeout`) until every entry this process installed
    /// has been resolved, so the first packets find their next hops.
    pub fn wait_resolved(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.ours.is_empty() && std::time::Instant::now() < deadline {
            let Ok(table) = read_table() else {
                return;
            };
            if self
                .ours
                .iter()
                .all(|hop| table.get(hop).is_some_and(|e| e.lladdr))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Removes the entries this process installed that are still as it
    /// made them (managed, not made permanent since).
    pub fn remove_all(&mut self) {
        if self.ours.is_empty() {
            return;
        }
        let table = match read_table() {
            Ok(t) => t,
            Err(e) => {
                log::warn!("neighbours left in place: {e:#}");
                return;
            }
        };
        for hop in self.ours.drain() {
            if decide(true, table.get(&hop)) != Action::Keep {
                continue;
            }
            let _ = Command::new("ip")
                .args(["neigh", "del", &hop.0.to_string(), "dev", &hop.1])
                .output();
        }
    }
}

impl Neighbours {
    /// Leaves every entry in place (the daemon stops, the director goes on
    /// forwarding): a later `lvs load` takes them over by their protocol.
    pub fn keep_all(&mut self) {
        self.ours.clear();
    }
}

/// `lvs unload`: deletes the entries an `lvs load` made on `devs` that are
/// still as it made them.
pub fn remove_tagged(devs: &[String]) {
    let table = match read_table() {
        Ok(t) => t,
        Err(e) => {
            log::warn!("neighbours left in place: {e:#}");
            return;
        }
    };
    for ((addr, dev), e) in table {
        if e.is_lvs() && devs.contains(&dev) {
            let _ = Command::new("ip")
                .args(["neigh", "del", &addr.to_string(), "dev", &dev])
                .output();
        }
    }
}

impl Drop for Neighbours {
    /// Also on an error's way out of `lvs load`.
    fn drop(&mut self) {
        self.remove_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_get_lines() {
        let a: IpAddr = "192.168.211.129".parse().unwrap();
        let (h, d) = parse_route_get(
            a,
            "192.168.211.129 dev ens33 src 192.168.211.128 uid 0 \\    cache ",
        )
        .unwrap();
        assert_eq!((h, d.as_str()), (a, "ens33"));
        let (h, d) = parse_route_get(
            a,
            "192.168.211.129 via 10.0.0.1 dev eth1 src 10.0.0.2 uid 0",
        )
        .unwrap();
        assert_eq!(
            (h.to_string(), d.as_str()),
            ("10.0.0.1".to_string(), "eth1")
        );
        assert!(parse_route_get(a, "local 192.168.211.129 dev lo src 192.168.211.129").is_err());
    }

    #[test]
    fn neigh_show_lines() {
        let t = parse_neigh_show(
            "192.168.47.129 dev eth0 lladdr 3e:d0:d9:75:99:b3 PERMANENT \n\
192.168.47.130 dev eth0 managed FAILED \n\
192.168.47.131 dev eth0 lladdr 02:00:00:00:00:06 NOARP \n\
192.168.47.132 dev eth0 lladdr 02:00:00:00:00:08 STALE \n\
192.168.47.133 dev eth0 FAILED \n\
192.168.47.134 dev eth0 lladdr 02:00:00:00:00:09 extern_learn REACHABLE \n\
2001:db8:47::129 dev eth0 lladdr 3e:d0:d9:75:99:b3 router managed REACHABLE \n\
garbage\n",
        );
        assert_eq!(t.len(), 7);
        let e = |a: &str| t[&(a.parse().unwrap(), "eth0".to_string())].clone();
        let perm = e("192.168.47.129");
        assert!(perm.lladdr && perm.is_static() && !perm.is_managed());
        assert_eq!(perm.words, ["PERMANENT"]);
        let ours = e("192.168.47.130");
        assert!(!ours.lladdr && ours.is_managed() && !ours.is_failed_learnt());
        assert!(e("192.168.47.131").is_static());
        assert!(e("192.168.47.133").is_failed_learnt());
        assert!(!e("192.168.47.134").is_failed_learnt());
        assert!(!ours.is_lvs());
        let v6 = e("2001:db8:47::129");
        assert!(v6.lladdr && v6.is_managed());
        assert_eq!(v6.words, ["router", "managed", "REACHABLE"]);
    }

    /// An entry an `lvs load` made carries our protocol; made static
    /// since, it is no longer ours.
    #[test]
    fn entries_of_an_earlier_lvs_load_are_known_by_their_protocol() {
        let t = parse_neigh_show(&format!(
            "10.0.0.1 dev e lladdr 02:00:00:00:00:01 managed REACHABLE proto {PROTO}\n\
10.0.0.2 dev e managed INCOMPLETE proto {PROTO}\n\
10.0.0.3 dev e lladdr 02:00:00:00:00:03 PERMANENT proto {PROTO}\n\
10.0.0.4 dev e lladdr 02:00:00:00:00:04 managed REACHABLE proto 12\n"
        ));
        let e = |i: u8| t[&(IpAddr::from([10, 0, 0, i]), "e".to_string())].clone();
        assert!(e(1).is_lvs() && e(2).is_lvs());
        assert!(!e(3).is_lvs() && !e(4).is_lvs());
    }

    /// Only what we made is ours; a permanent, noarp, learnt or someone
    /// else's managed entry is left; a failed learnt one is replaced.
    #[test]
    fn only_our_own_entries_are_managed() {
        let t = parse_neigh_show(
            "10.0.0.1 dev e lladdr 02:00:00:00:00:01 PERMANENT\n\
10.0.0.2 dev e lladdr 02:00:00:00:00:02 NOARP\n\
10.0.0.3 dev e lladdr 02:00:00:00:00:03 STALE\n\
10.0.0.4 dev e managed FAILED\n\
10.0.0.5 dev e FAILED\n\
10.0.0.6 dev e lladdr 02:00:00:00:00:06 managed REACHABLE\n",
        );
        let e = |i: u8| t.get(&(IpAddr::from([10, 0, 0, i]), "e".to_string()));
        assert_eq!(decide(false, None), Action::Add);
        assert_eq!(decide(true, None), Action::Add);
        for i in [1, 2, 3, 4, 6] {
            assert_eq!(decide(false, e(i)), Action::Leave, "10.0.0.{i}");
        }
        assert_eq!(decide(false, e(5)), Action::Replace);
        assert_eq!(decide(true, e(4)), Action::Keep);
        assert_eq!(decide(true, e(6)), Action::Keep);
        // Ours, then made permanent (or plain) by the operator.
        for i in [1, 2, 3] {
            assert_eq!(decide(true, e(i)), Action::Disown, "10.0.0.{i}");
        }
    }

    #[test]
    fn gateways_of_the_attached_links() {
        let text = "default via 192.168.47.254 dev ens37 \n\
10.1.0.0/16 via 192.168.211.254 dev ens33 proto static\n\
10.2.0.0/16 via 10.9.9.9 dev other0\n\
192.168.47.0/24 dev ens37 proto kernel scope link src 192.168.47.128\n";
        let ifaces = vec!["ens33".to_string(), "ens37".to_string()];
        let g: Vec<String> = parse_gateways(text, &ifaces)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(g, ["192.168.47.254", "192.168.211.254"]);
    }
}
