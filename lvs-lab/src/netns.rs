//! Network namespaces and doing things inside them.
//!
//! Commands go through `nsenter --net=/run/netns/NAME` rather than
//! `ip netns exec`, which remounts /sys and so hides the bpffs pins the
//! director and lvsadm share. In-process work runs on a fresh thread that
//! `setns`es first, so sockets it makes belong to the namespace while the
//! caller's thread stays where it was.

use std::{
    ffi::OsStr,
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::{
    process::{self, Proc, RUN_TIMEOUT},
    registry::Shared,
};

pub const NETNS_DIR: &str = "/run/netns";

/// A handle on one namespace of a lab. Cheap to clone; does not own it.
#[derive(Clone)]
pub struct Netns {
    name: String,
    role: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Netns({})", self.name)
    }
}

impl Netns {
    pub(crate) fn new(name: String, role: String, shared: Arc<Shared>) -> Netns {
        Netns { name, role, shared }
    }

    pub(crate) fn setup_fresh(&self) -> Result<()> {
        self.link_up("lo")?;
        // No duplicate address detection on the lab's links: a fresh
        // veth's link-local address would stay tentative for a second, in
        // which neighbour discovery from and to it stalls (a DR director's
        // first packets to a new real server then find no neighbour).
        for scope in ["all", "default"] {
            self.sysctl(&format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
        }
        // Lets `clients::ping` use unprivileged ICMP sockets (v4 and v6)
        // instead of raw ones.
        self.sysctl("net.ipv4.ping_group_range", "0 2147483647")
    }

    /// The full namespace name (`{prefix}-{role}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role it was created with (`client`, `director`, …).
    pub fn role(&self) -> &str {
        &self.role
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// `nsenter --net=/run/netns/NAME -- program`; add args, env, … and run
    /// it, or hand it to [`Netns::spawn_cmd`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `argv` inside, with a deadline; returns stdout or an error that
    /// carries stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty argv"))?;
        let mut cmd = self.command(program);
        cmd.args(args);
        process::check_output(&mut cmd, RUN_TIMEOUT)
    }

    /// `sh -c script` inside.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.run(&["sh", "-c", script])
    }

    /// Spawns `argv` inside as a long-running process owned by the lab.
    pub fn spawn(&self, name: &str, argv: &[&str]) -> Result<Proc> {
        let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty argv"))?;
        let mut cmd = self.command(program);
        cmd.args(args);
        self.spawn_cmd(name, cmd)
    }

    /// Spawns a prepared [`Netns::command`] as a lab-owned process.
    pub fn spawn_cmd(&self, name: &str, cmd: Command) -> Result<Proc> {
        self.shared.spawn(&format!("{}-{name}", self.role), cmd)
    }

    /// Runs `f` on a thread inside the namespace and returns its result
    /// (a panic in `f` is resumed here).
    pub fn enter<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = self.open()?;
        thread::scope(|s| {
            let h = s.spawn(move || -> Result<R> {
                setns(&file)?;
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
        .with_context(|| format!("in namespace {}", self.name))
    }

    /// A detached thread living inside the namespace (servers, long clients).
    pub fn spawn_thread<R, F>(&self, name: &str, f: F) -> Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.open()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let h = thread::Builder::new()
            .name(format!("{}:{name}", self.role))
            .spawn(move || {
                let entered = setns(&file);
                let ok = entered.is_ok();
                let _ = tx.send(entered);
                if !ok {
                    // The caller gets the error; this thread never ran `f`.
                    panic!("setns failed");
                }
                f()
            })?;
        match rx.recv() {
            Ok(Ok(())) => Ok(h),
            Ok(Err(e)) => {
                let _ = h.join();
                Err(e.context(format!("entering {}", self.name)))
            }
            Err(_) => bail!("thread for {} died before entering it", self.name),
        }
    }

    fn open(&self) -> Result<File> {
        File::open(self.path()).with_context(|| format!("opening {}", self.path().display()))
    }

    /// Writes a file as seen from inside (chiefly /proc/sys/net/…).
    pub fn write_file(&self, path: impl AsRef<Path>, contents: &str) -> Result<()> {
        let path = path.as_ref().to_owned();
        self.enter(|| std::fs::write(&path, contents))?
            .with_context(|| format!("writing {} in {}", path.display(), self.name))
    }

    /// Reads a file as seen from inside.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Result<String> {
        let path = path.as_ref().to_owned();
        self.enter(|| std::fs::read_to_string(&path))?
            .with_context(|| format!("reading {} in {}", path.display(), self.name))
    }

    /// `sysctl -w key=value` inside (`net.ipv4.ip_forward`, …).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.write_file(sysctl_path(key), value)
    }

    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        Ok(self.read_file(sysctl_path(key))?.trim().to_owned())
    }

    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut argv = vec!["ip"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// Adds `cidr` (v4 or v6) to `dev`. IPv6 addresses skip duplicate
    /// address detection, which would otherwise leave them unusable for a
    /// second or two.
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// The interface index of `dev` in this namespace.
    pub fn ifindex(&self, dev: &str) -> Result<u32> {
        let name = std::ffi::CString::new(dev)?;
        // SAFETY: a valid NUL-terminated name.
        let i = self.enter(move || unsafe { libc::if_nametoindex(name.as_ptr()) })?;
        if i == 0 {
            bail!("no interface {dev} in {}", self.name);
        }
        Ok(i)
    }

    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Software checksums on transmit: with offload on, locally made packets
    /// leave with partial checksums, which XDP forwarding passes on broken.
    pub fn tx_offload_off(&self, dev: &str) -> Result<()> {
        self.run(&["ethtool", "-K", dev, "tx", "off"]).map(drop)
    }

    /// `ip route add default via GW` (`ip -6` for a v6 gateway).
    pub fn route_default(&self, via: &str) -> Result<()> {
        self.route("default", via)
    }

    pub fn route(&self, dst: &str, via: &str) -> Result<()> {
        let family = if via.contains(':') { "-6" } else { "-4" };
        self.ip(&[family, "route", "add", dst, "via", via])
            .map(drop)
    }

    /// Processes whose network namespace this is.
    pub fn pids(&self) -> Vec<u32> {
        pids(&self.name)
    }
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

fn setns(file: &File) -> Result<()> {
    // SAFETY: a valid fd for a namespace file; affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `ip netns add`, serialised: concurrent first uses race on making
/// /run/netns a shared mount point.
pub(crate) fn create(name: &str) -> Result<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    process::check_output(Command::new("ip").args(["netns", "add", name]), RUN_TIMEOUT).map(drop)
}

/// `ip netns del`; a namespace that is already gone (another process's
/// sweep got there first) is not an error.
pub(crate) fn delete(name: &str) -> Result<()> {
    let path = Path::new(NETNS_DIR).join(name);
    if !path.exists() {
        return Ok(());
    }
    match process::check_output(Command::new("ip").args(["netns", "del", name]), RUN_TIMEOUT) {
        Err(_) if !path.exists() => Ok(()),
        r => r.map(drop),
    }
}

/// Names of all named namespaces.
pub(crate) fn list() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Identity of a namespace file (an nsfs inode).
fn ns_id(path: impl AsRef<Path>) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Pids whose (main thread's) network namespace is `name`.
pub(crate) fn pids(name: &str) -> Vec<u32> {
    let Some(target) = ns_id(Path::new(NETNS_DIR).join(name)) else {
        return Vec::new();
    };
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| ns_id(format!("/proc/{pid}/ns/net")) == Some(target))
        .collect()
}

/// Whether `pid` lives in one of the named namespaces.
pub(crate) fn pid_in(pid: u32, names: &[String]) -> bool {
    let Some(id) = ns_id(format!("/proc/{pid}/ns/net")) else {
        return false;
    };
    names
        .iter()
        .any(|n| ns_id(Path::new(NETNS_DIR).join(n)) == Some(id))
}
