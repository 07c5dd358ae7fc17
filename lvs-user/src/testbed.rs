//! The director loaded as `lvs load` loads it (maps pinned, tables
//! initialised) but attached to nothing, for running its programs on
//! crafted frames with BPF_PROG_TEST_RUN.
//!
//! This is the director half of the one BPF_PROG_TEST_RUN fixture; the
//! namespace half (links, fixed MACs, permanent neighbours, the plans) is
//! `lvs_lab::xdpns`, which carries a [`Director`] and derefs to it. The
//! split follows the dependencies: lvs-lab must not depend on lvs, and
//! lvs uses lvs-lab only in its tests, so the part that needs both is
//! this thin layer here, taking only the pin directory the namespace
//! fixture gives it. The integration tests and `lvs-bench` both build
//! `XdpNs<Director>` through it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use aya::{programs::Xdp, Ebpf};
use lvs_common::counters;

use crate::{
    loader::{self, Sizes, TunnelOpts},
    model::VirtualService,
    progtest::{self, RunOut},
    stats,
    tables::Tables,
};

/// The loaded director; its pins are removed on drop.
pub struct Director {
    /// Where the maps are pinned (the table store opens them there).
    pub pin: PathBuf,
    pub bpf: Ebpf,
}

impl Director {
    /// Loads the director with maps of `sizes` pinned under `pin`, tunnel
    /// options `tunnel`, default timeouts and no debug logs. The one place
    /// outside `lvs load` that follows the loader's signature.
    pub fn load(pin: &Path, sizes: Sizes, tunnel: TunnelOpts) -> Result<Director> {
        let bpf = loader::load_director(pin, sizes, false, tunnel, &[])?;
        Ok(Director {
            pin: pin.to_path_buf(),
            bpf,
        })
    }

    /// A loaded program of the director's object.
    pub fn prog(&self, name: &str) -> Result<&Xdp> {
        prog(&self.bpf, name)
    }

    /// Runs the `director` program once on `frame` as received on
    /// `ifindex`, keeping the output frame. Call inside the namespace.
    pub fn run_once(&self, frame: &[u8], ifindex: u32) -> Result<RunOut> {
        progtest::test_run(self.prog("director")?, frame, ifindex, 1, true)
    }

    /// Writes `LINK_MACS` from the links of the calling thread's namespace,
    /// as `lvs load` does from its own: call inside the fixture's namespace
    /// (frames to other MACs are passed untouched).
    pub fn sync_link_macs(&self) -> Result<usize> {
        crate::linkmacs::sync(&self.pin)
    }

    /// Replaces the whole configuration through the table store.
    pub fn set_services(&self, services: Vec<VirtualService>) -> Result<()> {
        let mut t = Tables::open(&self.pin)?;
        let mut snap = t.snapshot()?;
        snap.services = services;
        t.commit(&snap)
    }

    pub fn services(&self) -> Result<Vec<VirtualService>> {
        Ok(Tables::open(&self.pin)?.snapshot()?.services)
    }

    pub fn counters(&self) -> Result<[u64; counters::COUNT as usize]> {
        stats::read_counters(&self.pin)
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        loader::remove_pins(&self.pin);
    }
}

/// Loads XDP program `name` of any object.
pub fn load_prog(bpf: &mut Ebpf, name: &str) -> Result<()> {
    let prog: &mut Xdp = bpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("the object has no program {name}"))?
        .try_into()?;
    crate::loader::load_xdp(prog, name)
}

/// XDP program `name` of any object.
pub fn prog<'a>(bpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    bpf.program(name)
        .ok_or_else(|| anyhow!("no program {name}"))?
        .try_into()
        .map_err(|e| anyhow!("{name}: {e}"))
}
