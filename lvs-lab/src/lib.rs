//! Network-namespace labs for lvs-xdp: real links, real sockets, real
//! packets, all under one unique name prefix and gone again on drop.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use lvs_lab::{clients, seed::SeedLab, servers};
//!
//! if !lvs_lab::require_root("namespace tests") {
//!     return Ok(());
//! }
//! let lab = SeedLab::new("doc")?;
//! let _web = servers::http(&lab.rs[0], "0.0.0.0:80".parse()?, "hao2\n")?;
//! let body = clients::http_get(&lab.director, "192.168.211.129:80".parse()?, Duration::from_secs(2))?;
//! assert_eq!(body, "hao2\n");
//! # Ok(()) }
//! ```

mod bpffs;
pub mod clients;
pub mod ecmp;
pub mod fuzz;
pub mod ha;
pub mod interrupt;
mod lab;
pub mod lan;
mod link;
mod names;
mod netns;
pub mod packet;
mod process;
mod registry;
pub mod seed;
pub mod servers;
mod sweep;
pub mod xdpns;

pub use bpffs::{bpffs_mounted, ensure_bpffs, remove_pins, BPFFS};
pub use lab::Lab;
pub use link::MAX_IFNAME;
pub use netns::{Netns, NETNS_DIR};
pub use process::{check_output, run_timeout, Proc, RUN_TIMEOUT, STOP_GRACE};
pub use registry::Kept;
pub use sweep::{clean_kept, kept_records, sweep_stale};

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tools every lab needs; `demo`/`setup` install them on Debian.
pub const REQUIRED_TOOLS: &[&str] = &["ip", "nsenter", "ethtool"];

/// `true` when labs can be built here. Otherwise prints a loud
/// `SKIPPED (…): {what}` (once per process) and returns `false`, for tests
/// to `return` on.
pub fn require_root(what: &str) -> bool {
    let reason = if !is_root() {
        "not root".to_owned()
    } else if let Some(tool) = REQUIRED_TOOLS.iter().find(|t| !on_path(t)) {
        format!("{tool} not installed")
    } else {
        return true;
    };
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Straight to the stderr fd: the test harness captures eprintln!
        // of passing tests, and a skip must not pass silently.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED ({reason}): {what} ***\n");
    });
    false
}

/// Whether `program` is found on `$PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(program);
            std::fs::metadata(&p).is_ok_and(|m| {
                m.is_file() && {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                }
            })
        })
    })
}
