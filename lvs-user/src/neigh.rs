//! Keeping real servers' neighbour entries resolved ahead of traffic, so
//! the XDP program's `bpf_fib_lookup` finds their MACs.
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
}
