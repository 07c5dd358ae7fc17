//! The live-frames flood generator (lvs-ebpf's `lvs-flood` object): a
//! template frame sent again and again by BPF_PROG_TEST_RUN with
//! BPF_F_TEST_XDP_LIVE_FRAMES, each copy with a pseudo-random source
//! address and port and correct checksums, out of a link of the calling
//! thread's namespace. For the flood tests and `cargo xtask bench`.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use aya::{maps::Array, Ebpf};
use lvs_common::{
    csum::{replace16, replace32, udp_fixup},
    flood::{FloodGen, HEAD},
    PROTO_TCP, PROTO_UDP,
};

use crate::progtest::test_run_live;

static FLOOD_OBJ: &[u8] = aya::include_bytes_aligned!(env!("LVS_EBPF_FLOOD"));

/// Frames per live batch (the kernel's default, NAPI's weight).
const BATCH: u32 = 64;

/// Where the flood's sources come from: `2^addr_bits` addresses from
/// `addr`, `2^port_bits` ports from `port`.
#[derive(Clone, Copy, Debug)]
pub struct Sources {
    pub addr: Ipv4Addr,
    pub addr_bits: u32,
    pub port: u16,
    pub port_bits: u32,
}

pub struct Generator {
    bpf: Ebpf,
    frame: Vec<u8>,
}

fn rd16(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

/// `frame` (Ethernet, IPv4 without options, TCP or UDP) with its source
/// set to `addr`:`port`, checksums updated, padded to [`HEAD`] bytes (the
/// IPv4 length says where the packet ends; Ethernet pads short frames
/// anyway).
pub fn template(frame: &[u8], addr: Ipv4Addr, port: u16) -> Result<Vec<u8>> {
    if frame.len() < 34 + 8 {
        bail!(
            "a flood template is Ethernet + IPv4 + TCP/UDP ({} bytes)",
            frame.len()
        );
    }
    if frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 {
        bail!("a flood template is IPv4 without options");
    }
    let proto = frame[23];
    let l4_check = match proto {
        PROTO_TCP if frame.len() >= 34 + 20 => 34 + 16,
        PROTO_UDP => 34 + 6,
        _ => bail!("a flood template carries TCP or UDP (protocol {proto})"),
    };
    let mut f = frame.to_vec();
    let (old_src, new_src) = (rd32(&f, 26), u32::from_ne_bytes(addr.octets()));
    let (old_port, new_port) = (rd16(&f, 34), u16::from_ne_bytes(port.to_be_bytes()));
    let ipc = replace32(rd16(&f, 24), old_src, new_src);
    f[24..26].copy_from_slice(&ipc.to_ne_bytes());
    f[26..30].copy_from_slice(&new_src.to_ne_bytes());
    f[34..36].copy_from_slice(&new_port.to_ne_bytes());
    let old = rd16(&f, l4_check);
    let mut c = replace16(replace32(old, old_src, new_src), old_port, new_port);
    if proto == PROTO_UDP {
        c = udp_fixup(old, c);
    }
    f[l4_check..l4_check + 2].copy_from_slice(&c.to_ne_bytes());
    f.resize(f.len().max(HEAD), 0);
    Ok(f)
}

impl Generator {
    /// Loads the generator for copies of `frame` from `src`.
    pub fn load(frame: &[u8], src: Sources) -> Result<Generator> {
        if src.addr_bits > 32 || src.port_bits > 16 {
            bail!("flood sources: at most 32 address bits and 16 port bits");
        }
        let mask = |bits: u32| ((1u64 << bits) - 1) as u32;
        let frame = template(frame, src.addr, src.port)?;
        let mut bpf = Ebpf::load(FLOOD_OBJ).context("loading the flood generator (root?)")?;
        crate::testbed::load_prog(&mut bpf, "flood")?;
        let mut gen = FloodGen {
            src_base: u32::from(src.addr),
            src_mask: mask(src.addr_bits),
            port_base: src.port,
            port_mask: mask(src.port_bits) as u16,
            ..Default::default()
        };
        for (i, w) in gen.head.iter_mut().enumerate() {
            *w = u64::from_ne_bytes(frame[i * 8..i * 8 + 8].try_into().unwrap());
        }
        let mut cfg: Array<_, FloodGen> =
            Array::try_from(bpf.map_mut("FLOOD").context("no FLOOD map")?)?;
        cfg.set(0, gen, 0)?;
        Ok(Generator { bpf, frame })
    }

    /// The template as sent for the first source (the frame each copy
    /// starts from).
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Transmits `frames` copies out of link `ifindex` of the calling
    /// thread's namespace; returns when the kernel has sent them (a full
    /// veth ring drops some before the peer's XDP program sees them).
    pub fn send(&self, ifindex: u32, frames: u32) -> Result<()> {
        let prog = crate::testbed::prog(&self.bpf, "flood")?;
        test_run_live(prog, &self.frame, ifindex, frames, BATCH)
            .context("live BPF_PROG_TEST_RUN of the flood generator")?;
        Ok(())
    }

    /// The generator's output for one frame `input` (whatever it holds: a
    /// recycled live page may hold anything), as BPF_PROG_TEST_RUN returns
    /// it (not live): for checking the rewritten bytes.
    pub fn one(&self, input: &[u8], ifindex: u32) -> Result<(u32, Vec<u8>)> {
        let prog = crate::testbed::prog(&self.bpf, "flood")?;
        let r = crate::progtest::test_run(prog, input, ifindex, 1, true)?;
        Ok((r.action, r.out.unwrap_or_default()))
    }
}
