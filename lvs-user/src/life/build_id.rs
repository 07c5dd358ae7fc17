//! The director's build id: the `BUILD_ID` global of the eBPF object
//! (`lvs-ebpf/src/main.rs`), set by `lvs load` as it loads the object, and
//! read back from a running program's `.rodata` map. It tells which build
//! a pinned link runs after an upgrade in place: by default it is a hash
//! of the embedded object, so another build of `lvs` gives another id;
//! `LVS_BUILD_ID=N lvs load …` sets it, which makes a new program out of
//! the same object (the upgrade test's "new build").

use std::{
    collections::HashMap,
    os::fd::{AsFd, AsRawFd},
};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::MapInfo;

use crate::loader::DIRECTOR_OBJ;

/// The global's name in the object.
pub const GLOBAL: &str = "BUILD_ID";
/// The global data section (and map) that holds it.
const SECTION: &str = ".rodata";

/// The build id of the object this binary embeds: FNV-1a (64 bits) of it.
pub fn default_id() -> u64 {
    DIRECTOR_OBJ.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The environment variable that sets the build id (tests make an
/// "upgrade" out of the same object with it).
pub const ENV: &str = "LVS_BUILD_ID";

/// The build id a load gives the object: `$LVS_BUILD_ID` (decimal, or hex
/// with `0x`), else [`default_id`].
pub fn wanted() -> Result<u64> {
    match std::env::var(ENV) {
        Ok(v) => parse(&v).ok_or_else(|| anyhow!("bad {ENV} {v:?}: a number is wanted")),
        Err(_) => Ok(default_id()),
    }
}

fn parse(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Where `BUILD_ID` lies in the object's `.rodata`: found by setting it to
/// two values and seeing which bytes change (aya-obj keeps symbol offsets
/// to itself). (offset, section length)
fn offset() -> Result<(usize, usize)> {
    let patched = |v: u64| -> Result<Vec<u8>> {
        let mut obj =
            aya_obj::Object::parse(DIRECTOR_OBJ).context("parsing the director object")?;
        let bytes = v.to_ne_bytes();
        obj.patch_map_data(HashMap::from([(GLOBAL, (&bytes[..], true))]))
            .map_err(|e| anyhow!("the director object has no {GLOBAL}: {e}"))?;
        let map = obj
            .maps
            .get(SECTION)
            .ok_or_else(|| anyhow!("the director object has no {SECTION}"))?;
        Ok(map.data().to_vec())
    };
    let (a, b) = (patched(0)?, patched(u64::MAX)?);
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .ok_or_else(|| anyhow!("{GLOBAL} not found in {SECTION}"))?;
    if at + 8 > a.len() {
        bail!("{GLOBAL} at {at} overruns {SECTION} ({} bytes)", a.len());
    }
    Ok((at, a.len()))
}

/// The build id of the loaded program `prog_id` (e.g. what a pinned link
/// runs): read from the `.rodata` map it uses.
pub fn of_program(prog_id: u32) -> Result<u64> {
    let prog = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| anyhow!("no loaded program with id {prog_id}"))?;
    let ids = prog
        .map_ids()
        .map_err(|e| anyhow!("maps of program {prog_id}: {e}"))?
        .unwrap_or_default();
    let (at, len) = offset()?;
    for id in ids {
        let Ok(info) = MapInfo::from_id(id) else {
            continue;
        };
        if info.name_as_str() != Some(SECTION) || info.value_size() as usize != len {
            continue;
        }
        let fd = info.fd().map_err(|e| anyhow!("map {id}: {e}"))?;
        let value =
            lookup(fd.as_fd().as_raw_fd(), len).with_context(|| format!("reading map {id}"))?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&value[at..at + 8]);
        return Ok(u64::from_ne_bytes(b));
    }
    bail!("program {prog_id} uses no {SECTION} map of this build's layout")
}

/// `BPF_MAP_LOOKUP_ELEM` of key 0 in the array map `fd` of values of
/// `len` bytes.
fn lookup(fd: i32, len: usize) -> std::io::Result<Vec<u8>> {
    const BPF_MAP_LOOKUP_ELEM: u32 = 1;
    let key = 0u32;
    let mut value = vec![0u8; len];
    // struct { map_fd; pad; key (u64); value (u64); flags (u64) } map_elem
    let mut attr = [0u32; 32];
    attr[0] = fd as u32;
    let k = &key as *const u32 as u64;
    let v = value.as_mut_ptr() as u64;
    attr[2] = k as u32;
    attr[3] = (k >> 32) as u32;
    attr[4] = v as u32;
    attr[5] = (v >> 32) as u32;
    super::links::sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_has_a_build_id_in_its_rodata() {
        let (at, len) = offset().unwrap();
        assert!(at + 8 <= len);
        // The object's own value, before `lvs load` sets one.
        let obj = aya_obj::Object::parse(DIRECTOR_OBJ).unwrap();
        assert_eq!(obj.maps[SECTION].data()[at..at + 8], [0; 8]);
        assert_ne!(default_id(), 0);
    }

    #[test]
    fn build_ids_parse_in_decimal_or_hex() {
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse(" 0x2a "), Some(42));
        assert_eq!(parse("0xg"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse(""), None);
    }
}
