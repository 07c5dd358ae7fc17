//! Everything building and testing need, installed only where missing, so
//! that running it on a prepared machine does nothing.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, query};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// `cargo xtask package` builds the .deb with it.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// The LLVM features bpf-linker 0.13.0 offers.
const BPF_LINKER_LLVMS: [u32; 3] = [21, 22, 23];

/// Commands the tests and the demo use, and the Debian package with each.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("ethtool", "ethtool"),
    ("curl", "curl"),
    ("nginx", "nginx-light"),
    ("iptables", "iptables"),
    ("nft", "nftables"),
    ("wrk", "wrk"),
    ("haproxy", "haproxy"),
    ("bpftool", "bpftool"),
    // Health checks: keepalived is the referee of keepalived.conf (`-t`) and
    // runs VRRP beside lvs; metrics are scraped by a real Prometheus.
    ("keepalived", "keepalived"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("bird", "bird2"),
    ("birdc", "bird2"),
    // The package: cargo-deb's dependencies ($auto), and its test's
    // `systemd-analyze verify` (setpriv and unshare are util-linux's).
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("systemd-analyze", "systemd"),
    // lvsadm's argument errors are checked against the real ipvsadm, run
    // under an LD_PRELOAD shim (built with cc) in its own network
    // namespace (unshare).
    ("ipvsadm", "ipvsadm"),
    ("cc", "gcc"),
    ("unshare", "util-linux"),
];

#[derive(Clone, Copy, PartialEq)]
pub enum Verbosity {
    /// `cargo xtask setup`: say what is in place.
    Report,
    /// Before build/test: speak only when acting.
    Quiet,
}

pub fn run(v: Verbosity) -> Result<()> {
    nightly(v)?;
    bpf_linker(v)?;
    cargo_deb(v)?;
    bpffs(v)?;
    packages(v)?;
    if v == Verbosity::Report {
        eprintln!("setup: everything in place");
    }
    Ok(())
}

fn say(v: Verbosity, msg: &str) {
    if v == Verbosity::Report {
        eprintln!("setup: {msg}");
    }
}

fn nightly(v: Verbosity) -> Result<()> {
    let toolchains = query(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup not found: install it from https://rustup.rs")?;
    if !toolchains
        .lines()
        .any(|l| l.starts_with("nightly-") || l == "nightly")
    {
        cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = query(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    // rust-src for `-Z build-std=core`, clippy for `cargo xtask lint`.
    for component in ["rust-src", "clippy"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            cmd::run(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                "nightly",
            ]))?;
        }
    }
    say(v, "nightly toolchain with rust-src and clippy: ok");
    Ok(())
}

/// `bpf-linker --version` failing covers a linker whose libLLVM vanished
/// with a nightly update: it no longer loads, so it is rebuilt.
fn bpf_linker_ok() -> bool {
    query(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|v| v.split_whitespace().any(|w| w == BPF_LINKER_VERSION))
}

/// bpf-linker must use the very LLVM that nightly rustc emits bitcode for,
/// so it is built against the toolchain's own libLLVM rather than a system
/// one.
fn bpf_linker(v: Verbosity) -> Result<()> {
    if bpf_linker_ok() {
        say(v, &format!("bpf-linker {BPF_LINKER_VERSION}: ok"));
        return Ok(());
    }
    let version = query(Command::new("rustc").args(["+nightly", "-vV"]))
        .context("rustc +nightly -vV failed")?;
    let major = llvm_major(&version)?;
    if !BPF_LINKER_LLVMS.contains(&major) {
        bail!(
            "nightly uses LLVM {major}, but bpf-linker {BPF_LINKER_VERSION} supports only LLVM {BPF_LINKER_LLVMS:?}; \
             pin a nightly with one of those (rustup toolchain install nightly-YYYY-MM-DD)"
        );
    }
    let sysroot = query(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot failed")?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = Path::new(&home).join(format!(".cache/lvs-xdp/llvm-{major}"));
    link_llvm(&Path::new(sysroot.trim()).join("lib"), major, &prefix)?;
    let mut install = Command::new("cargo");
    install
        .env("LLVM_PREFIX", &prefix)
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--force",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ]);
    cmd::run(&mut install)?;
    if !bpf_linker_ok() {
        bail!("bpf-linker installed but `bpf-linker --version` does not report {BPF_LINKER_VERSION} (is ~/.cargo/bin on PATH?)");
    }
    Ok(())
}

fn cargo_deb(v: Verbosity) -> Result<()> {
    let ok = || {
        query(Command::new("cargo").args(["deb", "--version"]))
            .is_some_and(|o| o.split_whitespace().any(|w| w == CARGO_DEB_VERSION))
    };
    if ok() {
        say(v, &format!("cargo-deb {CARGO_DEB_VERSION}: ok"));
        return Ok(());
    }
    cmd::run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        CARGO_DEB_VERSION,
    ]))?;
    if !ok() {
        bail!("cargo-deb installed but `cargo deb --version` does not report {CARGO_DEB_VERSION} (is ~/.cargo/bin on PATH?)");
    }
    Ok(())
}

fn llvm_major(rustc_vv: &str) -> Result<u32> {
    let v = rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .context("no `LLVM version:` in rustc -vV")?;
    v.trim()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("unparsable LLVM version {v:?}"))
}

/// Fills `prefix`/lib with links to the toolchain's libLLVM under the
/// names the bpf-linker build looks for (`-lLLVM` needs `libLLVM.so`).
fn link_llvm(toolchain_lib: &Path, major: u32, prefix: &Path) -> Result<()> {
    let entries: Vec<String> = std::fs::read_dir(toolchain_lib)
        .with_context(|| format!("reading {}", toolchain_lib.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let (main, versioned) = llvm_libs(&entries, major).with_context(|| {
        format!(
            "no libLLVM-{major}-rust-*.so in {}",
            toolchain_lib.display()
        )
    })?;
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    let mut links = vec![(main.clone(), toolchain_lib.join(&main))];
    links.extend(versioned.map(|v| (v.clone(), toolchain_lib.join(v))));
    links.push(("libLLVM.so".into(), PathBuf::from(&main)));
    for (name, target) in links {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        symlink(&target, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

/// (`libLLVM-NN-rust-*.so`, `libLLVM.so.NN.*-rust-*`) among file names.
fn llvm_libs(names: &[String], major: u32) -> Option<(String, Option<String>)> {
    let main = names
        .iter()
        .find(|n| n.starts_with(&format!("libLLVM-{major}-rust-")) && n.ends_with(".so"))?;
    let versioned = names
        .iter()
        .find(|n| n.starts_with(&format!("libLLVM.so.{major}.")) && n.contains("-rust-"));
    Some((main.clone(), versioned.cloned()))
}

fn bpffs(v: Verbosity) -> Result<()> {
    if lvs_lab::bpffs_mounted() {
        say(v, "bpffs on /sys/fs/bpf: ok");
        return Ok(());
    }
    if !lvs_lab::is_root() {
        eprintln!("setup: bpffs is not mounted on /sys/fs/bpf and mounting it needs root");
        return Ok(());
    }
    lvs_lab::ensure_bpffs()?;
    eprintln!("setup: mounted bpffs on /sys/fs/bpf");
    Ok(())
}

fn have(tool: &str) -> bool {
    // sbin is often missing from non-root PATHs.
    lvs_lab::on_path(tool)
        || ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file())
}

fn packages(v: Verbosity) -> Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(t, _)| !have(t))
        .map(|&(_, p)| p)
        .collect();
    if missing.is_empty() {
        say(v, "system packages: ok");
        return Ok(());
    }
    let list = missing.join(" ");
    if !lvs_lab::is_root() || !have("apt-get") {
        eprintln!("setup: missing packages (install them as root on Debian): {list}");
        return Ok(());
    }
    cmd::run(Command::new("apt-get").arg("update"))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(&missing),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_version_is_parsed() {
        let vv =
            "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(vv).unwrap(), 22);
        assert!(llvm_major("rustc 1.0\n").is_err());
    }

    #[test]
    fn llvm_libraries_are_found() {
        let names: Vec<String> = [
            "librustc_driver-b5a965480ee51f9a.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "libLLVM-22-rust-1.97.0-nightly.so",
        ]
        .map(String::from)
        .into();
        let (main, versioned) = llvm_libs(&names, 22).unwrap();
        assert_eq!(main, "libLLVM-22-rust-1.97.0-nightly.so");
        assert_eq!(
            versioned.as_deref(),
            Some("libLLVM.so.22.1-rust-1.97.0-nightly")
        );
        assert!(llvm_libs(&names, 21).is_none());
    }

    #[test]
    fn llvm_prefix_links_the_toolchain_libraries() {
        let tmp = std::env::temp_dir().join(format!("xtask-llvm-{}", std::process::id()));
        let (toolchain, prefix) = (tmp.join("toolchain/lib"), tmp.join("prefix"));
        std::fs::create_dir_all(&toolchain).unwrap();
        for f in [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
        ] {
            std::fs::write(toolchain.join(f), f).unwrap();
        }
        // Twice: re-running replaces the links.
        for _ in 0..2 {
            link_llvm(&toolchain, 22, &prefix).unwrap();
        }
        let lib = prefix.join("lib");
        let read = |n: &str| std::fs::read_to_string(lib.join(n)).unwrap();
        assert_eq!(read("libLLVM.so"), "libLLVM-22-rust-1.97.0-nightly.so");
        assert_eq!(
            read("libLLVM.so.22.1-rust-1.97.0-nightly"),
            "libLLVM.so.22.1-rust-1.97.0-nightly"
        );
        assert_eq!(
            std::fs::read_link(lib.join("libLLVM.so")).unwrap(),
            Path::new("libLLVM-22-rust-1.97.0-nightly.so")
        );
        assert!(link_llvm(&toolchain, 23, &prefix).is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
