//! VLAN sub-interfaces for the data path: for each VLAN device on this
//! host (802.1Q or 802.1ad, from `/proc/net/vlan/config`), `VLAN_IN` maps
//! (parent link, VLAN id) to the sub-interface, where the FIB knows the
//! VLAN's addresses and routes, and `VLAN_OUT` maps the sub-interface back
//! to (parent, id), so a frame the FIB sends out of it leaves the parent
//! link tagged. `lvs load` syncs them before attaching and every tick.

use std::{collections::HashMap as StdHashMap, ffi::CString};

use anyhow::{anyhow, Result};
use aya::{
    maps::{Array, HashMap, MapData},
    Ebpf,
};
use lvs_common::{Config, VlanDev, VlanKey};

use crate::tables::names;

/// The kernel's list of VLAN devices (absent where the 8021q module is not
/// loaded, which means there are none).
const PROC_VLANS: &str = "/proc/net/vlan/config";

/// A VLAN device: its name, VLAN id, and the link it sits on.
#[derive(Debug, PartialEq, Eq)]
pub struct Vlan {
    pub dev: String,
    pub vid: u16,
    pub parent: String,
}

/// Parses `/proc/net/vlan/config`: two header lines, then
/// `DEV | VID | PARENT` per device.
pub fn parse_proc(text: &str) -> Vec<Vlan> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let mut f = l.split('|').map(str::trim);
            let dev = f.next()?.to_owned();
            let vid = f.next()?.parse().ok()?;
            let parent = f.next()?.to_owned();
            (!dev.is_empty() && !parent.is_empty()).then_some(Vlan { dev, vid, parent })
        })
        .collect()
}

fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name; 0 means "no such interface".
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Makes `VLAN_IN`/`VLAN_OUT` equal to the host's VLAN devices (ifindexes
/// as they are now) and records their count in `CONFIG`. Returns it.
pub fn sync(bpf: &mut Ebpf) -> Result<u32> {
    let text = std::fs::read_to_string(PROC_VLANS).unwrap_or_default();
    let want: StdHashMap<u32, VlanDev> = parse_proc(&text)
        .into_iter()
        .filter_map(|v| {
            let sub = ifindex(&v.dev)?;
            let parent = ifindex(&v.parent)?;
            Some((
                sub,
                VlanDev {
                    parent,
                    vid: v.vid,
                    _pad: 0,
                },
            ))
        })
        .collect();
    let want_in: StdHashMap<VlanKey, u32> = want
        .iter()
        .map(|(sub, d)| {
            let key = VlanKey {
                ifindex: d.parent,
                vid: d.vid,
                _pad: 0,
            };
            (key, *sub)
        })
        .collect();
    make_equal(bpf, names::VLAN_OUT, &want)?;
    make_equal(bpf, names::VLAN_IN, &want_in)?;
    let n = want.len() as u32;
    let map = bpf
        .map_mut(names::CONFIG)
        .ok_or_else(|| anyhow!("the director object has no {}", names::CONFIG))?;
    let mut config: Array<&mut MapData, Config> = Array::try_from(map)?;
    let mut cfg = config.get(&0, 0)?;
    if cfg.vlans != n {
        cfg.vlans = n;
        config.set(0, cfg, 0)?;
    }
    Ok(n)
}

/// Makes the hash map `name` hold exactly `want`: stale keys removed,
/// missing or different values written.
fn make_equal<K, V>(bpf: &mut Ebpf, name: &str, want: &StdHashMap<K, V>) -> Result<()>
where
    K: aya::Pod + Eq + std::hash::Hash,
    V: aya::Pod + PartialEq,
{
    let map = bpf
        .map_mut(name)
        .ok_or_else(|| anyhow!("the director object has no {name}"))?;
    let mut m: HashMap<&mut MapData, K, V> = HashMap::try_from(map)?;
    let stale: Vec<K> = m
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| !want.contains_key(k))
        .collect();
    for k in stale {
        m.remove(&k)?;
    }
    for (k, v) in want {
        if m.get(k, 0).ok().as_ref() != Some(v) {
            m.insert(k, v, 0)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_vlan_list() {
        let text = "VLAN Dev name\t | VLAN ID\n\
                    Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n\
                    ens37.100      | 100  | ens37\n\
                    trunk.7        | 7    | trunk\n\
                    garbage line\n";
        assert_eq!(
            parse_proc(text),
            [
                Vlan {
                    dev: "ens37.100".into(),
                    vid: 100,
                    parent: "ens37".into()
                },
                Vlan {
                    dev: "trunk.7".into(),
                    vid: 7,
                    parent: "trunk".into()
                }
            ]
        );
        assert!(parse_proc("").is_empty());
    }
}
