//! Links between namespaces: veth pairs and bridges.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{
    lab::Lab,
    netns::Netns,
    process::{self, RUN_TIMEOUT},
};

/// Linux's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME: usize = 15;

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['/', ' ', ':']) {
        bail!("bad interface name {name:?} (1..={MAX_IFNAME} chars, no '/', ' ', ':')");
    }
    Ok(())
}

impl Lab {
    /// A veth pair `a_dev` (in `a`) ↔ `b_dev` (in `b`), both ends up with
    /// TX checksum offload off. The ends are created directly inside their
    /// namespaces, so the names never meet in the root namespace and cannot
    /// collide with other labs'. Add addresses with [`Netns::addr`].
    pub fn veth(&self, a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> Result<()> {
        check_ifname(a_dev)?;
        check_ifname(b_dev)?;
        let mut cmd = Command::new("ip");
        cmd.args(["link", "add", a_dev, "netns", a.name()]).args([
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "netns",
            b.name(),
        ]);
        process::check_output(&mut cmd, RUN_TIMEOUT)?;
        for (ns, dev) in [(a, a_dev), (b, b_dev)] {
            ns.tx_offload_off(dev)?;
            ns.link_up(dev)?;
        }
        Ok(())
    }

    /// A veth from `host`'s `host_dev` to a new port `port` of bridge
    /// `bridge` in `switch` (see [`Netns::bridge`]).
    pub fn bridge_port(
        &self,
        switch: &Netns,
        bridge: &str,
        port: &str,
        host: &Netns,
        host_dev: &str,
    ) -> Result<()> {
        self.veth(host, host_dev, switch, port)?;
        switch
            .ip(&["link", "set", port, "master", bridge])
            .map(drop)
    }
}

impl Netns {
    /// A bridge, up, forwarding at once (no STP, no forward delay).
    pub fn bridge(&self, name: &str) -> Result<()> {
        check_ifname(name)?;
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ])?;
        self.link_up(name)
    }
}
