//! `lvs decap`: loads the real server's decapsulation program, keeps its
//! table of this host's addresses current, and runs until a signal.

use std::{collections::HashSet, net::IpAddr, path::Path, process::Command, time::Duration};

use anyhow::{anyhow, Context, Result};
use aya::{
    maps::{HashMap, MapData},
    programs::{Xdp, XdpMode},
    EbpfLoader,
};
use lvs_common::{AddrKey, AF_INET, AF_INET6};

use crate::{loader, tables::addr_words};

static DECAP_OBJ: &[u8] = aya::include_bytes_aligned!(env!("LVS_EBPF_DECAP"));

/// Default pin directory of `lvs decap`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/lvs-decap";
const MAPS: [&str; 2] = ["DECAP_ADDRS", "DECAP_COUNTERS"];

/// This host's addresses, from `ip -o addr show` (`… inet ADDR/LEN …`).
pub fn host_addrs() -> Result<Vec<IpAddr>> {
    let out = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .context("running `ip -o addr show`")?;
    Ok(parse_addrs(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_addrs(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "inet" || *x == "inet6")?;
            w.get(i + 1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

fn key(a: IpAddr) -> AddrKey {
    AddrKey {
        addr: addr_words(a),
        family: if a.is_ipv4() { AF_INET } else { AF_INET6 },
        _pad: [0; 3],
    }
}

/// `lvs decap --iface IF…`: attach and serve until SIGINT/SIGTERM.
pub async fn run(ifaces: Vec<String>, mode: XdpMode, pin_dir: &Path) -> Result<()> {
    loader::ensure_bpffs(pin_dir)?;
    let result = serve(ifaces, mode, pin_dir).await;
    for m in MAPS {
        let _ = std::fs::remove_file(pin_dir.join(m));
    }
    let _ = std::fs::remove_dir(pin_dir);
    result
}

async fn serve(ifaces: Vec<String>, mode: XdpMode, pin_dir: &Path) -> Result<()> {
    let mut bpf = EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .load(DECAP_OBJ)
        .context("cannot load the decap object (are you root?)")?;
    let prog: &mut Xdp = bpf
        .program_mut("decap")
        .ok_or_else(|| anyhow!("object has no decap program"))?
        .try_into()?;
    loader::load_xdp(prog, "decap")?;
    loader::attach(prog, &ifaces, mode)?;
    let mut addrs: HashMap<_, AddrKey, u8> = HashMap::try_from(
        bpf.map_mut("DECAP_ADDRS")
            .ok_or_else(|| anyhow!("object has no DECAP_ADDRS map"))?,
    )?;
    let mut known: HashSet<AddrKey> = HashSet::new();
    sync(&mut addrs, &mut known)?;
    let sig = loader::stop_signals()?;
    println!(
        "lvs: decap attached to {}; maps pinned at {}",
        ifaces.join(", "),
        pin_dir.display()
    );
    // For lvs-xdp-decap.service (Type=notify).
    if let Err(e) = crate::life::notify::notify("READY=1") {
        log::warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(sig);
    loop {
        tokio::select! {
            r = &mut sig => {
                let _ = crate::life::notify::notify("STOPPING=1");
                return r;
            }
            _ = tick.tick() => {
                if let Err(e) = sync(&mut addrs, &mut known) {
                    crate::warn::warn(&format!("cannot refresh local addresses: {e:#}"));
                }
                crate::warn::flush();
            }
        }
    }
}

/// The decap program loaded but attached to nothing, its maps pinned under
/// `pin_dir` (removed on drop) and `addrs` as the host's addresses: for
/// BPF_PROG_TEST_RUN (the data-path fuzzer).
pub struct Loaded {
    pub bpf: aya::Ebpf,
    pin_dir: std::path::PathBuf,
}

impl Loaded {
    pub fn load(pin_dir: &Path, addrs: &[IpAddr]) -> Result<Loaded> {
        loader::ensure_bpffs(pin_dir)?;
        let mut bpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(DECAP_OBJ)
            .context("cannot load the decap object (are you root?)")?;
        let prog: &mut Xdp = bpf
            .program_mut("decap")
            .ok_or_else(|| anyhow!("object has no decap program"))?
            .try_into()?;
        loader::load_xdp(prog, "decap")?;
        let mut map: HashMap<_, AddrKey, u8> = HashMap::try_from(
            bpf.map_mut("DECAP_ADDRS")
                .ok_or_else(|| anyhow!("object has no DECAP_ADDRS map"))?,
        )?;
        for a in addrs {
            map.insert(key(*a), 1, 0)?;
        }
        Ok(Loaded {
            bpf,
            pin_dir: pin_dir.to_path_buf(),
        })
    }

    pub fn prog(&self) -> Result<&Xdp> {
        crate::testbed::prog(&self.bpf, "decap")
    }

    /// `DECAP_COUNTERS` summed over CPUs (rx, decap, not_ours).
    pub fn counters(&self) -> Result<[u64; lvs_common::decap_counters::COUNT as usize]> {
        let m = self
            .bpf
            .map("DECAP_COUNTERS")
            .ok_or_else(|| anyhow!("object has no DECAP_COUNTERS map"))?;
        let c: aya::maps::PerCpuArray<_, u64> = aya::maps::PerCpuArray::try_from(m)?;
        let mut out = [0u64; lvs_common::decap_counters::COUNT as usize];
        for (i, o) in out.iter_mut().enumerate() {
            *o = c.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        for m in MAPS {
            let _ = std::fs::remove_file(self.pin_dir.join(m));
        }
        let _ = std::fs::remove_dir(&self.pin_dir);
    }
}

/// Makes the map hold exactly this host's current addresses.
fn sync(map: &mut HashMap<&mut MapData, AddrKey, u8>, known: &mut HashSet<AddrKey>) -> Result<()> {
    let now: HashSet<AddrKey> = host_addrs()?.into_iter().map(key).collect();
    for k in now.difference(known) {
        map.insert(k, 1, 0)?;
    }
    for k in known.difference(&now) {
        let _ = map.remove(k);
    }
    *known = now;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_ip_addr_show() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
1: lo    inet 192.168.47.200/32 scope global lo\\       valid_lft forever\n\
2: eth0    inet6 2001:db8:47::129/64 scope global nodad \\       valid_lft forever\n";
        let a = parse_addrs(text);
        assert_eq!(a.len(), 3);
        assert_eq!(a[1], "192.168.47.200".parse::<IpAddr>().unwrap());
        assert_eq!(a[2], "2001:db8:47::129".parse::<IpAddr>().unwrap());
    }
}
