//! `LINK_MACS`: every link's MAC by ifindex, which the data path compares
//! with a frame's destination MAC (a frame to another MAC is passed,
//! `foreign_mac`). Written from the links of the calling thread's network
//! namespace, as rtnetlink reports them: by `lvs load` at start and every
//! second after (a changed MAC or a new link is seen within it), and by
//! the BPF_PROG_TEST_RUN fixtures inside their namespace.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use aya::maps::{Array, Map, MapData};
use lvs_common::{LinkMac, MAX_IFINDEX};

use crate::{hops::rtnl::Rtnl, tables::names};

/// What `LINK_MACS` holds, as this process wrote it: a second's sync
/// compares with it and writes only what changed.
#[derive(Default)]
pub struct LinkMacs {
    written: BTreeMap<u32, LinkMac>,
    /// A link beyond the array was reported once (not every second).
    warned: bool,
}

impl LinkMacs {
    /// Writes the MAC of every Ethernet link of this thread's namespace
    /// into the `LINK_MACS` pinned under `pin`, and clears the entries of
    /// links that are gone since the last sync. Returns how many links
    /// have an entry. A link whose ifindex does not fit the array is an
    /// error, the first time (nothing else is left unwritten).
    pub fn sync(&mut self, pin: &Path) -> Result<usize> {
        let links = Rtnl::new()
            .and_then(|mut r| r.links())
            .context("listing the links (RTM_GETLINK)")?;
        let want: BTreeMap<u32, LinkMac> = links
            .iter()
            .filter_map(|l| Some((l.index, LinkMac::new(l.mac?))))
            .collect();
        let m = MapData::from_pin(pin.join(names::LINK_MACS))
            .with_context(|| format!("opening {}", names::LINK_MACS))?;
        let mut a: Array<MapData, LinkMac> = Array::try_from(Map::Array(m))?;
        let mut too_big = None;
        for (&i, mac) in &want {
            if i >= a.len() {
                too_big = Some(i);
            } else if self.written.get(&i) != Some(mac) {
                a.set(i, *mac, 0)?;
            }
        }
        for &i in self.written.keys().filter(|i| !want.contains_key(i)) {
            a.set(i, LinkMac::default(), 0)?;
        }
        let n = want.len();
        self.written = want;
        if let Some(i) = too_big.filter(|_| !std::mem::replace(&mut self.warned, true)) {
            bail!(
                "link index {i} is beyond the {MAX_IFINDEX} links whose MACs the director knows: \
                 its frames are passed to the kernel"
            );
        }
        Ok(n)
    }
}

/// One sync, for a director of its own (the BPF_PROG_TEST_RUN fixtures).
pub fn sync(pin: &Path) -> Result<usize> {
    LinkMacs::default().sync(pin)
}
