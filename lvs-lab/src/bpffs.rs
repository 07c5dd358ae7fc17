//! The BPF filesystem, where the director pins its maps and links.

use std::{ffi::CString, io, path::Path};

use anyhow::{bail, Context, Result};

pub const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub fn bpffs_mounted() -> bool {
    is_bpffs(Path::new(BPFFS))
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs only writes into the zeroed struct we hand it.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Mounts bpffs on /sys/fs/bpf unless it already is; pins elsewhere would
/// silently land on sysfs and fail.
pub fn ensure_bpffs() -> Result<()> {
    if bpffs_mounted() {
        return Ok(());
    }
    let target = CString::new(BPFFS)?;
    let kind = CString::new("bpf")?;
    // SAFETY: all pointers are valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 && !bpffs_mounted() {
        bail!("mount -t bpf bpf {BPFFS}: {}", io::Error::last_os_error());
    }
    Ok(())
}

/// Removes a pin directory and everything pinned below it. bpffs has no
/// recursive delete; unlinking a pin only drops that reference, so programs
/// and maps go away once nothing else holds them.
pub fn remove_pins(dir: &Path) -> Result<()> {
    if !dir.starts_with(BPFFS) || dir == Path::new(BPFFS) {
        bail!("refusing to remove {} (not below {BPFFS})", dir.display());
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        // Also when someone else removed (part of) it meanwhile.
        Err(_) if !dir.exists() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}
