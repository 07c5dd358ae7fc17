//! Shared set-up of the namespace tests: the seed's NAT topology with the
//! director running, and helpers to drive `lvsadm` in it.
#![allow(dead_code)]

use std::{path::Path, time::Duration};

use anyhow::Result;
use lvs_lab::{
    seed::{SeedConfig, SeedLab},
    Proc,
};

pub const LVS: &str = env!("CARGO_BIN_EXE_lvs");
pub const LVSADM: &str = env!("CARGO_BIN_EXE_lvsadm");
pub const T: Duration = Duration::from_secs(3);

pub struct Director {
    // Processes first: they stop before the lab removes the namespaces.
    _procs: Vec<Proc>,
    pub seed: SeedLab,
}

/// The seed's lab with `lvs pass` on the peers and `lvs load` on the
/// director. Forwarding is on, as `lvs_nat.sh` sets it (the XDP FIB lookup
/// needs it); no netfilter rule is installed.
pub fn director(tag: &str, real_servers: usize) -> Result<Director> {
    let seed = SeedLab::with_config(
        tag,
        SeedConfig {
            real_servers,
            ..Default::default()
        },
    )?;
    seed.director.sysctl("net.ipv4.ip_forward", "1")?;
    let mut procs = seed.start_pass(Path::new(LVS))?;
    procs.push(seed.start_director(Path::new(LVS), &[])?);
    Ok(Director {
        _procs: procs,
        seed,
    })
}

impl Director {
    /// `lvsadm args…`, which must succeed.
    pub fn adm(&self, args: &[&str]) -> String {
        self.seed
            .lvsadm(Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
    }

    /// `lvsadm args…` with stdin; (exit code, stdout, stderr).
    pub fn adm_raw(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        use std::io::Write;
        let mut cmd = self.seed.lvsadm_command(Path::new(LVSADM));
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn lvsadm");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("lvsadm output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `lvs stats` counter by name.
    pub fn counter(&self, name: &str) -> u64 {
        let out = lvs_lab::check_output(
            self.seed
                .director
                .command(LVS)
                .args(["stats", "--pin-path"])
                .arg(self.seed.pin_dir()),
            T,
        )
        .expect("lvs stats");
        out.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no counter {name} in {out}"))
    }
}
