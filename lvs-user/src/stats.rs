//! The director's global counters (`COUNTERS`: one per-CPU block indexed
//! by `lvs_common::counters`), as `lvs stats` prints them and the tests
//! and the benchmarks compare them.

use std::path::Path;

use anyhow::Result;
use aya::maps::{Map, MapData, PerCpuArray};
use lvs_common::counters;

use crate::tables::names;

/// The counters of the director pinned under `pin`, summed over CPUs.
pub fn read_counters(pin: &Path) -> Result<[u64; counters::COUNT as usize]> {
    let m = MapData::from_pin(pin.join(names::COUNTERS))?;
    let c: PerCpuArray<MapData, counters::Counters> = PerCpuArray::try_from(Map::PerCpuArray(m))?;
    let mut out = [0u64; counters::COUNT as usize];
    for cpu in c.get(&0, 0)?.iter() {
        for (o, v) in out.iter_mut().zip(cpu.0) {
            *o += v;
        }
    }
    Ok(out)
}
