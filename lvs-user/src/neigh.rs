//! Keeping next hops' neighbour entries resolved ahead of traffic, so the
//! XDP program's `bpf_fib_lookup` finds their MACs: those of the real
//! servers, of the routers on the director's links, and of destinations
//! the data path reported missing (`NEIGH_MISS`).
//!
//! We install *managed* neighbour entries (kernel ≥ 5.16): the kernel then
//! resolves them and keeps them fresh by itself, with no traffic of ours.
//! The next hop is the real server or, when it is routed, its gateway.

use std::{collections::HashSet, net::IpAddr, process::Command};

use anyhow::{bail, Context, Result};

/// The neighbours this process installed: (next hop, device).
#[derive(Default)]
pub struct Neighbours {
    done: HashSet<(IpAddr, String)>,
}

/// Next hop and device for `addr`, from `ip route get`.
fn next_hop(addr: IpAddr) -> Result<(IpAddr, String)> {
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
fn parse_route_get(addr: IpAddr, line: &str) -> Result<(IpAddr, String)> {
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
    /// Makes sure `addr`'s next hop has a managed neighbour entry.
    pub fn ensure(&mut self, addr: IpAddr) -> Result<()> {
        let (hop, dev) = next_hop(addr)?;
        if self.done.contains(&(hop, dev.clone())) {
            return Ok(());
        }
        let out = Command::new("ip")
            .args(["neigh", "replace", &hop.to_string(), "dev", &dev, "managed"])
            .output()
            .context("running `ip neigh replace`")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // An existing permanent/static entry is at least as good.
            if !err.contains("File exists") {
                bail!(
                    "cannot add a managed neighbour for {hop} on {dev}: {}",
                    err.trim()
                );
            }
        }
        log::info!("neighbour {hop} on {dev} is kept resolved (for real server {addr})");
        self.done.insert((hop, dev));
        Ok(())
    }

    /// Waits (at most `timeout`) until every entry this process installed
    /// has been resolved, so the first packets find their next hops.
    pub fn wait_resolved(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let Ok(out) = Command::new("ip").args(["-o", "neigh", "show"]).output() else {
                return;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let pending = self.done.iter().any(|(hop, dev)| {
                let prefix = format!("{hop} dev {dev} ");
                !text
                    .lines()
                    .any(|l| l.starts_with(&prefix) && l.contains("lladdr"))
            });
            if !pending {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Removes the entries this process installed.
    pub fn remove_all(&mut self) {
        for (hop, dev) in self.done.drain() {
            let _ = Command::new("ip")
                .args(["neigh", "del", &hop.to_string(), "dev", &dev])
                .output();
        }
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
