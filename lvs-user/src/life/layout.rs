//! The layout record: what a director's pin directory was made for (the
//! `--max-*` sizes, the XDP mode, the links, and every pinned map's shape),
//! pinned beside the maps as a one-entry array (bpffs holds no plain
//! files), so that a later `lvs load` can tell whether it may adopt them.
//!
//! aya reuses a pinned map by name whatever its shape, so a binary whose
//! maps differ (another `--max-conns`, a changed value type) must be
//! refused before it loads anything: [`differences`] compares what this
//! binary wants with the record and with each pinned map as the kernel
//! reports it (`bpf_map_get_info`).

use std::{collections::BTreeMap, path::Path};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::{Array, Map, MapData};
use aya_obj::maps::PinningType;

use crate::{
    loader::{self, Sizes},
    tables::names,
};

/// Bytes of the record's one value (its text, NUL-padded).
pub const RECORD_SIZE: usize = 4096;
/// The record's map name in the kernel (at most 15 bytes).
const RECORD_MAP_NAME: &str = "LVS_LAYOUT";
const MAGIC: &str = "lvs-layout 1";
/// `BPF_MAP_TYPE_ARRAY`.
const MAP_TYPE_ARRAY: u32 = 2;

/// A map's shape as the kernel knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

impl MapShape {
    /// The fields that differ, as `(field, this, other)`.
    fn diff(&self, o: &MapShape) -> Vec<(&'static str, u32, u32)> {
        [
            ("type", self.map_type, o.map_type),
            ("key_size", self.key_size, o.key_size),
            ("value_size", self.value_size, o.value_size),
            ("max_entries", self.max_entries, o.max_entries),
            ("flags", self.flags, o.flags),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .collect()
    }
}

/// What a pin directory holds, or what a load wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub sizes: Sizes,
    /// `native` or `skb` (`--xdp-mode`).
    pub mode: String,
    /// The links the director is attached to.
    pub ifaces: Vec<String>,
    pub maps: BTreeMap<String, MapShape>,
}

impl Layout {
    /// What this binary makes for `sizes`: the director object's pinned
    /// maps with the sizes `lvs load` gives them.
    pub fn wanted(sizes: Sizes, mode: &str, ifaces: &[String]) -> Result<Layout> {
        let obj = aya_obj::Object::parse(loader::DIRECTOR_OBJ)
            .map_err(|e| anyhow!("cannot parse the director object: {e}"))?;
        let overrides = loader::map_sizes(sizes, loader::possible_cpus()?);
        let mut maps = BTreeMap::new();
        for (name, m) in &obj.maps {
            if m.pinning() != PinningType::ByName {
                continue;
            }
            let max_entries = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map_or(m.max_entries(), |&(_, v)| v);
            maps.insert(
                name.clone(),
                MapShape {
                    map_type: m.map_type(),
                    key_size: m.key_size(),
                    value_size: m.value_size(),
                    max_entries,
                    flags: m.map_flags(),
                },
            );
        }
        Ok(Layout {
            sizes,
            mode: mode.to_owned(),
            ifaces: ifaces.to_vec(),
            maps,
        })
    }

    pub fn render(&self) -> String {
        let s = &self.sizes;
        let mut out = format!(
            "{MAGIC}\nmax-conns {}\nmax-services {}\nmax-reals {}\nsched-table-size {}\nmax-embryonic {}\nxdp-mode {}\n",
            s.max_conns, s.max_services, s.max_reals, s.sched_table, s.max_embryonic, self.mode
        );
        for i in &self.ifaces {
            out.push_str(&format!("iface {i}\n"));
        }
        for (name, m) in &self.maps {
            out.push_str(&format!(
                "map {name} type {} key {} value {} max {} flags {}\n",
                m.map_type, m.key_size, m.value_size, m.max_entries, m.flags
            ));
        }
        out
    }

    pub fn parse(text: &str) -> Result<Layout> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            bail!("not a layout record of this version (want {MAGIC:?})");
        }
        let mut sizes = Sizes::default();
        let mut mode = String::new();
        let mut ifaces = Vec::new();
        let mut maps = BTreeMap::new();
        for line in lines {
            let w: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> Result<u32> {
                w.get(i)
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("bad layout line {line:?}"))
            };
            match w.first().copied() {
                Some("max-conns") => sizes.max_conns = num(1)?,
                Some("max-services") => sizes.max_services = num(1)?,
                Some("max-reals") => sizes.max_reals = num(1)?,
                Some("sched-table-size") => sizes.sched_table = num(1)?,
                Some("max-embryonic") => sizes.max_embryonic = num(1)?,
                Some("xdp-mode") => mode = w.get(1).copied().unwrap_or_default().to_owned(),
                Some("iface") if w.len() == 2 => ifaces.push(w[1].to_owned()),
                Some("map") if w.len() == 12 => {
                    maps.insert(
                        w[1].to_owned(),
                        MapShape {
                            map_type: num(3)?,
                            key_size: num(5)?,
                            value_size: num(7)?,
                            max_entries: num(9)?,
                            flags: num(11)?,
                        },
                    );
                }
                None => {}
                _ => bail!("bad layout line {line:?}"),
            }
        }
        Ok(Layout {
            sizes,
            mode,
            ifaces,
            maps,
        })
    }
}

/// Every way `pinned` (the record, when there is one, and each map's info)
/// differs from `want`, as phrases naming both values; empty when this
/// binary may adopt the maps.
pub fn differences(
    record: Option<&Layout>,
    pinned_maps: &BTreeMap<String, Option<MapShape>>,
    want: &Layout,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = record {
        let (a, b) = (&r.sizes, &want.sizes);
        for (opt, there, here) in [
            ("--max-conns", a.max_conns, b.max_conns),
            ("--max-services", a.max_services, b.max_services),
            ("--max-reals", a.max_reals, b.max_reals),
            ("--sched-table-size", a.sched_table, b.sched_table),
            ("--max-embryonic", a.max_embryonic, b.max_embryonic),
        ] {
            if there != here {
                out.push(format!(
                    "{opt} is {there} in the pinned director, {here} in this load"
                ));
            }
        }
        if r.mode != want.mode {
            out.push(format!(
                "--xdp-mode is {} in the pinned director, {} in this load",
                r.mode, want.mode
            ));
        }
        // Sizes explain the maps' sizes: name the option, not four maps.
        if !out.is_empty() {
            return out;
        }
        for (name, w) in &want.maps {
            match r.maps.get(name) {
                None => out.push(format!("map {name} is not in the pinned layout")),
                Some(m) => out.extend(m.diff(w).into_iter().map(|(f, there, here)| {
                    format!(
                        "map {name} has {f} {there} in the pinned layout, {here} in this binary"
                    )
                })),
            }
        }
        for name in r.maps.keys().filter(|n| !want.maps.contains_key(*n)) {
            out.push(format!(
                "map {name} of the pinned layout is unknown to this binary"
            ));
        }
    }
    for (name, w) in &want.maps {
        match pinned_maps.get(name) {
            Some(Some(m)) => out.extend(m.diff(w).into_iter().map(|(f, there, here)| {
                format!("pinned map {name} has {f} {there}, this binary wants {here}")
            })),
            _ => out.push(format!("map {name} is not pinned")),
        }
    }
    out.dedup();
    out
}

/// The shapes of the maps `want` names, as pinned under `dir` (`None`
/// where one is missing).
pub fn pinned_maps(dir: &Path, want: &Layout) -> BTreeMap<String, Option<MapShape>> {
    want.maps
        .keys()
        .map(|name| {
            let shape = MapData::from_pin(dir.join(name))
                .and_then(|m| m.info())
                .ok()
                .and_then(|i| {
                    Some(MapShape {
                        map_type: i.map_type().ok()? as u32,
                        key_size: i.key_size(),
                        value_size: i.value_size(),
                        max_entries: i.max_entries(),
                        flags: i.map_flags(),
                    })
                });
            (name.clone(), shape)
        })
        .collect()
}

fn open_record(dir: &Path) -> Result<Array<MapData, [u8; RECORD_SIZE]>> {
    let m = MapData::from_pin(dir.join(names::LAYOUT))?;
    Ok(Array::try_from(Map::Array(m))?)
}

/// The record pinned under `dir`, if any.
pub fn read(dir: &Path) -> Result<Option<Layout>> {
    if !dir.join(names::LAYOUT).exists() {
        return Ok(None);
    }
    let rec = open_record(dir).context("cannot open the layout record")?;
    let bytes = rec.get(&0, 0)?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..end]).context("layout record is not text")?;
    Layout::parse(text).map(Some)
}

/// Writes `layout` as the record under `dir`, pinning a new one if there
/// is none.
pub fn write(dir: &Path, layout: &Layout) -> Result<()> {
    let text = layout.render();
    if text.len() >= RECORD_SIZE {
        bail!("layout record too long ({} bytes)", text.len());
    }
    let mut value = [0u8; RECORD_SIZE];
    value[..text.len()].copy_from_slice(text.as_bytes());
    let path = dir.join(names::LAYOUT);
    if !path.exists() {
        let def = aya_obj::Map::new_from_params(MAP_TYPE_ARRAY, 4, RECORD_SIZE as u32, 1, 0);
        let m = MapData::create(def, RECORD_MAP_NAME, None)
            .context("cannot create the layout record")?;
        m.pin(&path)
            .with_context(|| format!("cannot pin {}", path.display()))?;
    }
    let mut rec = open_record(dir)?;
    rec.set(0, value, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let mut maps = BTreeMap::new();
        let shape = |max| MapShape {
            map_type: 9,
            key_size: 40,
            value_size: 64,
            max_entries: max,
            flags: 0,
        };
        maps.insert("CONNS".to_owned(), shape(65921));
        maps.insert("REPLIES".to_owned(), shape(65921));
        Layout {
            sizes: Sizes::default(),
            mode: "native".into(),
            ifaces: vec!["ens33".into(), "ens37".into()],
            maps,
        }
    }

    #[test]
    fn this_binary_wants_every_pinned_map_at_its_size() {
        let w = Layout::wanted(Sizes::default(), "native", &[]).unwrap();
        let names: Vec<&str> = w.maps.keys().map(String::as_str).collect();
        let mut all = names::ALL.to_vec();
        all.sort();
        assert_eq!(names, all);
        let cpus = loader::possible_cpus().unwrap();
        assert_eq!(
            w.maps[names::CONNS].max_entries,
            loader::lru_entries(65536, cpus)
        );
        assert_eq!(w.maps[names::REALS].max_entries, 4096);
        assert_eq!(w.maps[names::DESTS].max_entries, 8192);
        assert!(w.render().len() < RECORD_SIZE);
    }

    #[test]
    fn records_round_trip() {
        let l = layout();
        assert_eq!(Layout::parse(&l.render()).unwrap(), l);
        assert!(Layout::parse("lvs-layout 0\n").is_err());
        assert!(Layout::parse(&format!("{MAGIC}\nmax-conns x\n")).is_err());
    }

    #[test]
    fn the_same_layout_has_no_differences() {
        let l = layout();
        let pinned = l.maps.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
        assert!(differences(Some(&l), &pinned, &l).is_empty());
        // An older director without a record: the maps alone decide.
        assert!(differences(None, &pinned, &l).is_empty());
    }

    #[test]
    fn another_max_conns_is_named_with_both_values() {
        let pinned_layout = layout();
        let mut want = layout();
        want.sizes.max_conns = 1000;
        want.maps.get_mut("CONNS").unwrap().max_entries = 1385;
        let pinned = pinned_layout
            .maps
            .iter()
            .map(|(k, v)| (k.clone(), Some(*v)))
            .collect();
        let d = differences(Some(&pinned_layout), &pinned, &want);
        assert_eq!(
            d,
            ["--max-conns is 65536 in the pinned director, 1000 in this load"]
        );
        // Without a record the map itself tells.
        let d = differences(None, &pinned, &want);
        assert_eq!(
            d,
            ["pinned map CONNS has max_entries 65921, this binary wants 1385"]
        );
    }

    #[test]
    fn a_changed_or_missing_map_is_a_difference() {
        let l = layout();
        let mut pinned: BTreeMap<String, Option<MapShape>> =
            l.maps.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
        pinned
            .get_mut("CONNS")
            .unwrap()
            .as_mut()
            .unwrap()
            .value_size = 48;
        pinned.insert("REPLIES".into(), None);
        let d = differences(None, &pinned, &l);
        assert_eq!(
            d,
            [
                "pinned map CONNS has value_size 48, this binary wants 64",
                "map REPLIES is not pinned"
            ]
        );
        let mut want = l.clone();
        want.maps.get_mut("REPLIES").unwrap().key_size = 44;
        let ok: BTreeMap<String, Option<MapShape>> = want
            .maps
            .iter()
            .map(|(k, v)| (k.clone(), Some(*v)))
            .collect();
        assert_eq!(
            differences(Some(&l), &ok, &want),
            ["map REPLIES has key_size 40 in the pinned layout, 44 in this binary"]
        );
    }
}
