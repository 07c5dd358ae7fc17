//! The director's XDP attachments as pinned bpf_links: one pin per link
//! (`link-IFNAME` in the pin directory), so the attachment outlives the
//! process that made it; what an interface carries (netlink); and the
//! plan for each interface of a load: attach anew, or adopt the pinned
//! link and switch it to the new program in place (`bpf_link_update`).
//!
//! Links are created with `BPF_LINK_CREATE` directly: aya's `Xdp::attach`
//! falls back to a netlink attachment where the kernel refuses a bpf_link,
//! and such an attachment cannot be pinned; here the refusal is an error.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use aya::programs::{
    links::{FdLink, PinnedLink},
    Xdp, XdpMode,
};

/// The pin of the link on `iface` under `dir`.
pub fn link_pin(dir: &Path, iface: &str) -> PathBuf {
    dir.join(format!("link-{iface}"))
}

/// Interface names of the link pins under `dir`.
pub fn pinned_ifaces(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("link-").map(str::to_owned)
        })
        .collect();
    out.sort();
    out
}

pub fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Skb => "skb",
        XdpMode::Driver => "native",
        XdpMode::Hardware => "hw",
        XdpMode::Default => "default",
    }
}

fn mode_flags(mode: XdpMode) -> u32 {
    // XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE.
    match mode {
        XdpMode::Default => 0,
        XdpMode::Skb => 1 << 1,
        XdpMode::Driver => 1 << 2,
        XdpMode::Hardware => 1 << 3,
    }
}

pub fn ifindex(iface: &str) -> Result<u32> {
    let c = CString::new(iface).map_err(|_| anyhow!("bad interface name {iface:?}"))?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => bail!("no such interface: {iface}"),
        i => Ok(i),
    }
}

/// `bpf(2)` with an attribute block of 128 bytes (zero beyond the fields
/// the command reads).
pub(crate) fn sys_bpf(cmd: u32, attr: &mut [u32; 32]) -> io::Result<i64> {
    // SAFETY: attr is a valid, writable block of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

const BPF_OBJ_PIN: u32 = 6;
const BPF_OBJ_GET: u32 = 7;
const BPF_LINK_CREATE: u32 = 28;
const BPF_LINK_DETACH: u32 = 34;
const BPF_XDP: u32 = 37;

/// Attaches `prog` to `iface` as a bpf_link and pins the link at `pin`.
fn create_pinned(prog: &Xdp, iface: &str, mode: XdpMode, pin: &Path) -> Result<()> {
    let index = ifindex(iface)?;
    let prog_fd = prog.fd()?.as_fd().as_raw_fd();
    // struct { prog_fd; target_ifindex; attach_type; flags; } link_create
    let mut attr = [0u32; 32];
    attr[0] = prog_fd as u32;
    attr[1] = index;
    attr[2] = BPF_XDP;
    attr[3] = mode_flags(mode);
    let fd = sys_bpf(BPF_LINK_CREATE, &mut attr).map_err(|e| {
        anyhow!(
            "the kernel refused an XDP bpf_link on {iface} ({} mode): {e}; lvs needs a \
             pinnable bpf_link (Linux ≥ 5.9) and does not fall back to a netlink \
             attachment, which would die with this process",
            mode_name(mode)
        )
    })?;
    // SAFETY: the kernel just handed us this descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let path = CString::new(pin.as_os_str().as_encoded_bytes())?;
    // struct { pathname (u64); bpf_fd; file_flags; } obj_pin
    let mut attr = [0u32; 32];
    let ptr = path.as_ptr() as u64;
    attr[0] = ptr as u32;
    attr[1] = (ptr >> 32) as u32;
    attr[2] = fd.as_raw_fd() as u32;
    sys_bpf(BPF_OBJ_PIN, &mut attr)
        .with_context(|| format!("cannot pin the link on {iface} at {}", pin.display()))?;
    // The pin holds the link now; closing our descriptor leaves it attached.
    Ok(())
}

/// Detaches the link pinned at `pin` now and removes the pin. Removing the
/// pin alone would do, but the kernel frees a link whose last reference
/// went in a work queue, a moment later: `lvs unload` and a load that
/// clears a killed one's staging directory must find the links gone.
pub fn detach_pinned(pin: &Path) -> Result<()> {
    let path = CString::new(pin.as_os_str().as_encoded_bytes())?;
    // struct { pathname (u64); bpf_fd; file_flags; } obj_get
    let mut attr = [0u32; 32];
    let ptr = path.as_ptr() as u64;
    attr[0] = ptr as u32;
    attr[1] = (ptr >> 32) as u32;
    let detached = sys_bpf(BPF_OBJ_GET, &mut attr).and_then(|fd| {
        // SAFETY: the kernel just handed us this descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut attr = [0u32; 32];
        attr[0] = fd.as_raw_fd() as u32;
        sys_bpf(BPF_LINK_DETACH, &mut attr)
    });
    let removed = std::fs::remove_file(pin);
    detached.with_context(|| format!("cannot detach the link pinned at {}", pin.display()))?;
    removed.with_context(|| format!("cannot remove {}", pin.display()))?;
    Ok(())
}

/// IDs of the XDP programs attached to `index` (every mode), by netlink.
pub fn xdp_prog_ids(index: u32) -> Result<Vec<u32>> {
    const RTM_GETLINK: u16 = 18;
    const RTM_NEWLINK: u16 = 16;
    const NLMSG_ERROR: u16 = 2;
    const IFLA_XDP: u16 = 43;
    // IFLA_XDP_PROG_ID, _DRV_PROG_ID, _SKB_PROG_ID, _HW_PROG_ID.
    const PROG_IDS: [u16; 4] = [4, 5, 6, 7];
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("netlink socket");
    }
    // SAFETY: a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16) + ifinfomsg (16).
    let mut req = [0u8; 32];
    req[0..4].copy_from_slice(&32u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[20..24].copy_from_slice(&(index as i32).to_ne_bytes());
    // SAFETY: sending our buffer on our socket (to the kernel: no address).
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error()).context("netlink send");
    }
    let mut buf = vec![0u8; 65536];
    // SAFETY: receiving into our buffer.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error()).context("netlink recv");
    }
    let msg = &buf[..n as usize];
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if msg.len() < 32 {
        bail!("short netlink answer");
    }
    let len = (u32_at(msg, 0) as usize).min(msg.len());
    match u16_at(msg, 4) {
        RTM_NEWLINK => {}
        NLMSG_ERROR => {
            let errno = -(u32_at(msg, 16) as i32);
            bail!(
                "netlink: interface {index}: {}",
                io::Error::from_raw_os_error(errno)
            );
        }
        t => bail!("unexpected netlink message type {t}"),
    }
    let mut ids = Vec::new();
    let mut i = 32;
    while i + 4 <= len {
        let alen = u16_at(msg, i) as usize;
        let atype = u16_at(msg, i + 2) & 0x3fff;
        if alen < 4 || i + alen > len {
            break;
        }
        if atype == IFLA_XDP {
            let mut j = i + 4;
            while j + 4 <= i + alen {
                let blen = u16_at(msg, j) as usize;
                let btype = u16_at(msg, j + 2) & 0x3fff;
                if blen < 4 || j + blen > i + alen {
                    break;
                }
                if PROG_IDS.contains(&btype) && blen >= 8 {
                    let id = u32_at(msg, j + 4);
                    if id != 0 && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                j += (blen + 3) & !3;
            }
        }
        i += (alen + 3) & !3;
    }
    Ok(ids)
}

/// "`name` (id N)" of a loaded program.
pub fn describe_prog(id: u32) -> String {
    let name = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_owned))
        .unwrap_or_default();
    if name.is_empty() {
        format!("id {id}")
    } else {
        format!("`{name}` (id {id})")
    }
}

/// The link pinned at `pin` and the program it runs.
pub fn pinned_link(pin: &Path) -> Option<(FdLink, u32)> {
    let link = FdLink::from(PinnedLink::from_pin(pin).ok()?);
    let prog = link.info().ok()?.program_id();
    Some((link, prog))
}

/// What a load does on one interface.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Switch the link pinned for it to the new program.
    Adopt,
    /// Attach a new link (replacing a stale pin whose link lost its
    /// interface, `stale`).
    Attach { stale: bool },
}

/// The plan for each of `ifaces` given the link pins under `dir`:
/// refuses an interface that carries an XDP program other than the one
/// its pinned link runs, naming that program.
pub fn plan(dir: &Path, ifaces: &[String]) -> Result<Vec<(String, Plan)>> {
    let mut out = Vec::new();
    for iface in ifaces {
        let attached = xdp_prog_ids(ifindex(iface)?)
            .with_context(|| format!("cannot read the XDP programs of {iface}"))?;
        let pinned = pinned_link(&link_pin(dir, iface)).map(|(_, prog)| prog);
        let plan = match (pinned, attached.as_slice()) {
            (Some(p), [a]) if *a == p => Plan::Adopt,
            (_, []) => Plan::Attach {
                stale: link_pin(dir, iface).exists(),
            },
            (_, progs) => {
                let names: Vec<String> = progs.iter().map(|&id| describe_prog(id)).collect();
                bail!(
                    "{iface} already carries XDP program {}, which is not the director pinned \
                     at {}: refusing to replace it (detach it first; another `lvs load` \
                     with another --pin-path is stopped with `lvs unload --pin-path DIR`)",
                    names.join(" and "),
                    dir.display()
                );
            }
        };
        out.push((iface.clone(), plan));
    }
    Ok(out)
}

/// Carries out `plan` for `prog` with the link pins under `dir`; returns
/// each link's id.
pub fn attach(
    prog: &mut Xdp,
    dir: &Path,
    plan: &[(String, Plan)],
    mode: XdpMode,
) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for (iface, p) in plan {
        let pin = link_pin(dir, iface);
        match p {
            Plan::Adopt => {
                let (link, _) = pinned_link(&pin)
                    .ok_or_else(|| anyhow!("the link pinned at {} is gone", pin.display()))?;
                let link = aya::programs::xdp::XdpLink::try_from(link)
                    .map_err(|e| anyhow!("{} is not an XDP link: {e}", pin.display()))?;
                prog.attach_to_link(link)
                    .map_err(|e| anyhow!("cannot switch the link on {iface}: {e}"))?;
            }
            Plan::Attach { stale } => {
                if *stale {
                    let _ = detach_pinned(&pin);
                }
                create_pinned(prog, iface, mode, &pin)?;
            }
        }
        let id = pinned_link(&pin)
            .and_then(|(l, _)| l.info().ok())
            .map_or(0, |i| i.id());
        ids.push(id);
    }
    Ok(ids)
}
