//! The director's global counters (`COUNTERS`, one per-CPU array slot per
//! `lvs_common::counters` index), as `lvs stats` prints them and the tests
//! and the benchmarks compare them.

use std::path::Path;

use anyhow::Result;
use aya::maps::{Map, MapData, PerCpuArray};
use lvs_common::counters;

use crate::tables::names;

/// The counters of the director pinned under `pin`, summed over CPUs.
pub fn read_counters(pin: &Path) -> Result<[u64; counters::COUNT as usize]> {
    let m = MapData::from_pin(pin.join(names::COUNTERS))?;
    let c: PerCpuArray<MapData, u64> = PerCpuArray::try_from(Map::PerCpuArray(m))?;
    let mut out = [0u64; counters::COUNT as usize];
    for (i, o) in out.iter_mut().enumerate() {
        *o = c.get(&(i as u32), 0)?.iter().sum();
    }
    Ok(out)
}
