//! `lvs`: the lvs-xdp loader and daemon.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aya::programs::XdpMode;
use clap::{Parser, Subcommand, ValueEnum};
use lvs::{
    decap,
    loader::{self, LoadOpts, Sizes, TunnelOpts},
    model::STATE_NAMES,
    stats, tables,
};
use lvs_common::counters;

#[derive(Parser)]
#[command(name = "lvs", version, about = "Linux Virtual Server director in XDP")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Native,
    Skb,
}

impl From<Mode> for XdpMode {
    fn from(m: Mode) -> XdpMode {
        match m {
            Mode::Native => XdpMode::Driver,
            Mode::Skb => XdpMode::Skb,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Bgp {
    Bird,
}

// Parsed once per run: the size of `Load`'s options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Load and attach the director to every named link (or adopt the one
    /// pinned at the pin path); runs until SIGINT/SIGTERM, which end the
    /// daemon and leave the director forwarding.
    Load {
        /// A link to attach to (repeat for several).
        #[arg(long = "iface", short = 'i', required = true)]
        ifaces: Vec<String>,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: Mode,
        /// Where to pin the maps [default: $LVS_PIN_PATH or /sys/fs/bpf/lvs].
        #[arg(long)]
        pin_path: Option<PathBuf>,
        /// Connections the table holds (CONNS and REPLIES get room beyond
        /// this for the kernel's per-CPU LRU free lists).
        #[arg(long, default_value_t = Sizes::default().max_conns)]
        max_conns: u32,
        /// Embryonic connections (handshake not completed; UDP not yet
        /// confirmed) held apart from established ones: a flood of new
        /// flows evicts only these.
        #[arg(long, default_value_t = Sizes::default().max_embryonic)]
        max_embryonic: u32,
        /// A new connection when --max-conns established ones are tracked:
        /// refuse (passed to the director's stack, which resets it) or
        /// evict the least recently used established connection.
        #[arg(long, value_enum, default_value = "refuse")]
        conn_table_full: loader::TableFull,
        #[arg(long, default_value_t = Sizes::default().max_services)]
        max_services: u32,
        #[arg(long, default_value_t = Sizes::default().max_reals)]
        max_reals: u32,
        /// Entries of the shared scheduler table (rr/wrr sequences, dh/sh
        /// buckets, Maglev tables of 65 537 entries).
        #[arg(long, default_value_t = Sizes::default().sched_table)]
        sched_table_size: u32,
        /// Per-packet debug logs from the data path.
        #[arg(long)]
        debug: bool,
        /// Outer source address of TUN packets (one IPv4 and/or one IPv6)
        /// [default: the egress link's address].
        #[arg(long = "tunnel-source")]
        tunnel_source: Vec<std::net::IpAddr>,
        /// Path MTU for TUN packets [default: the route's MTU].
        #[arg(long)]
        tunnel_mtu: Option<u32>,
        /// A connection state's timeout, e.g. `--timeout close_wait=30`
        /// (repeatable; `lvsadm --set` sets ESTABLISHED, FIN_WAIT and UDP).
        #[arg(long = "timeout", value_parser = parse_timeout)]
        timeouts: Vec<(u8, u32)>,
        /// On SIGINT/SIGTERM detach the director and remove its pins (as
        /// `lvs unload`) instead of leaving it forwarding.
        #[arg(long)]
        detach_on_exit: bool,
        /// Serve Prometheus metrics at http://ADDR:PORT/metrics (node_exporter's
        /// ipvs names, and lvs-xdp's own under lvs_).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
        /// Announce each VIP that has a real server of weight > 0 through
        /// BIRD 2 (the only speaker supported: `bird`).
        #[arg(long, value_enum)]
        bgp: Option<Bgp>,
        /// BIRD's control socket.
        #[arg(long, requires = "bgp", value_name = "PATH", default_value = lvs::bgp::DEFAULT_SOCKET)]
        bird_socket: PathBuf,
        /// The file of VIP routes BIRD's configuration includes (written
        /// atomically by lvs).
        #[arg(long, requires = "bgp", value_name = "FILE", default_value = lvs::bgp::DEFAULT_INCLUDE)]
        bird_include: PathBuf,
        /// Withdraw the VIPs when the daemon stops (they stay announced
        /// otherwise: the director keeps forwarding).
        #[arg(long, requires = "bgp")]
        withdraw: bool,
        /// keepalived.conf: apply its virtual servers before saying ready,
        /// then health-check their real servers (SIGHUP re-reads it).
        #[arg(long, conflicts_with = "rules")]
        config: Option<PathBuf>,
        /// With --config: a connection of a real server the checker removed
        /// ends at its next packet (IPVS's expire_nodest_conn=1), rather
        /// than having its packets dropped until it times out.
        #[arg(long, requires = "config")]
        expire_nodest_conn: bool,
        /// An `ipvsadm -S` file: the table, applied as one change before
        /// the director reports ready (a bad file stops the start); SIGHUP
        /// applies it again, as `lvs apply` does.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Make the running director's table equal to an `ipvsadm -S` file,
    /// as one change: what both have keeps its connections, counts and
    /// scheduler position; the rest is deleted as `-D`/`-d` do.
    Apply {
        /// An `ipvsadm -S` file (what `lvsadm -R` reads): the whole table.
        file: PathBuf,
        /// [default: $LVS_PIN_PATH or /sys/fs/bpf/lvs]
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
    /// Detach the director pinned at the pin path and remove its pins,
    /// tables and connections (refused while an `lvs load` serves it).
    Unload {
        /// [default: $LVS_PIN_PATH or /sys/fs/bpf/lvs]
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
    /// Real-server side of TUN: strip IPIP / IPv6-in-IPv6 addressed to this host.
    Decap {
        #[arg(long = "iface", short = 'i', required = true)]
        ifaces: Vec<String>,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: Mode,
        /// [default: /sys/fs/bpf/lvs-decap]
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
    /// Attach an XDP_PASS program (for the peers of veth links); runs until a signal.
    Pass {
        #[arg(long = "iface", short = 'i', required = true)]
        ifaces: Vec<String>,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: Mode,
    },
    /// Print the data path's counters.
    Stats {
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
    /// Health-check the virtual servers of a keepalived.conf; with
    /// `--test`, only validate the file (as `keepalived -t`): exit 0, or
    /// print `FILE:LINE: …` and exit 1.
    Check {
        /// keepalived.conf (keepalived.conf(5): its virtual_server blocks).
        #[arg(long)]
        config: PathBuf,
        /// Only validate the file; apply and check nothing.
        #[arg(long)]
        test: bool,
        /// A connection of a real server the checker removed ends at its
        /// next packet (IPVS's expire_nodest_conn=1), rather than having
        /// its packets dropped until it times out.
        #[arg(long, conflicts_with = "test")]
        expire_nodest_conn: bool,
        /// Without --test: the director whose tables the checker keeps
        /// [default: $LVS_PIN_PATH or /sys/fs/bpf/lvs].
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
    /// The connection sync daemons' counters (received, rejected by
    /// reason, skipped, sent), from `lvs load`'s control socket.
    SyncStats {
        #[arg(long)]
        pin_path: Option<PathBuf>,
    },
}

/// Parses `STATE=SECS` (state names as `lvsadm -L -c` prints them, any case)
/// into (state code, seconds).
fn parse_timeout(s: &str) -> Result<(u8, u32), String> {
    let (name, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("expected STATE=SECONDS, got {s:?}"))?;
    let code = STATE_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| format!("unknown state {name:?} (one of {})", STATE_NAMES.join(", ")))?;
    let secs: u32 = secs
        .trim()
        .parse()
        .map_err(|_| format!("bad number of seconds {secs:?}"))?;
    if secs == 0 {
        return Err("a timeout must be at least 1 second".into());
    }
    Ok((code as u8, secs))
}

/// `lvs stats`: the data path's global counters, one per line.
fn print_counters(dir: &Path) -> Result<()> {
    let values = stats::read_counters(dir)
        .with_context(|| format!("cannot read counters under {}", dir.display()))?;
    let mut out = String::new();
    for (name, v) in counters::NAMES.iter().zip(values) {
        out.push_str(&format!("{name:<18} {v}\n"));
    }
    // A closed pipe (`lvs stats | head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
    Ok(())
}

/// `lvs check --config FILE --test`: the file parsed and validated, its
/// warnings and skipped blocks on stderr, nothing applied.
fn check_config(path: &Path, test: bool) -> Result<()> {
    let cfg = lvs::keepalived::load(path)?;
    if !cfg.skipped.is_empty() {
        eprintln!(
            "lvs: {}: skipped {} (keepalived's other parts: run keepalived beside lvs for VRRP)",
            path.display(),
            cfg.skipped.join(", ")
        );
    }
    for w in &cfg.warnings {
        eprintln!("lvs: warning: {w}");
    }
    if !test {
        anyhow::bail!("lvs check without --test (running the checker) is not implemented yet");
    }
    let reals: usize = cfg
        .virtual_servers
        .iter()
        .map(|v| v.real_servers.len())
        .sum();
    println!(
        "{}: configuration OK: {} virtual servers, {} real servers",
        path.display(),
        cfg.virtual_servers.len(),
        reals
    );
    Ok(())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.cmd {
            Cmd::Load {
                ifaces,
                xdp_mode,
                pin_path,
                max_conns,
                max_embryonic,
                conn_table_full,
                max_services,
                max_reals,
                sched_table_size,
                debug,
                tunnel_source,
                tunnel_mtu,
                timeouts,
                detach_on_exit,
                metrics,
                bgp,
                bird_socket,
                bird_include,
                withdraw,
                config,
                expire_nodest_conn,
                rules,
            } => {
                let mut tunnel = TunnelOpts {
                    mtu: tunnel_mtu,
                    ..Default::default()
                };
                for a in tunnel_source {
                    match a {
                        std::net::IpAddr::V4(v4) => tunnel.source4 = Some(v4),
                        std::net::IpAddr::V6(v6) => tunnel.source6 = Some(v6),
                    }
                }
                loader::run_load(LoadOpts {
                    ifaces,
                    mode: xdp_mode.into(),
                    pin_dir: tables::pin_path(pin_path.as_deref()),
                    sizes: Sizes {
                        max_conns,
                        max_services,
                        max_reals,
                        sched_table: sched_table_size,
                        max_embryonic,
                        table_full: conn_table_full,
                    },
                    debug,
                    tunnel,
                    timeouts,
                    detach_on_exit,
                    metrics,
                    bgp: bgp.map(|Bgp::Bird| lvs::bgp::BgpOpts {
                        socket: bird_socket,
                        include: bird_include,
                        withdraw,
                    }),
                    config,
                    expire_nodest_conn,
                    rules,
                })
                .await
            }
            Cmd::Apply { file, pin_path } => lvs::rules::Rules::read(&file)
                .and_then(|r| lvs::rules::apply(&tables::pin_path(pin_path.as_deref()), &r))
                .map(|line| println!("lvs apply: {line}")),
            Cmd::Unload { pin_path } => {
                lvs::life::unload(&tables::pin_path(pin_path.as_deref())).map(|m| println!("{m}"))
            }
            Cmd::Pass { ifaces, xdp_mode } => loader::run_pass(ifaces, xdp_mode.into()).await,
            Cmd::Decap {
                ifaces,
                xdp_mode,
                pin_path,
            } => {
                let dir = pin_path.unwrap_or_else(|| decap::DEFAULT_PIN_PATH.into());
                decap::run(ifaces, xdp_mode.into(), &dir).await
            }
            Cmd::Stats { pin_path } => print_counters(&tables::pin_path(pin_path.as_deref())),
            Cmd::Check {
                config,
                test,
                pin_path,
                expire_nodest_conn,
            } if !test => {
                // Running the checker (its load says what it skipped).
                let dir = tables::pin_path(pin_path.as_deref());
                let nodest = lvs::health::apply::Nodest {
                    expire: expire_nodest_conn,
                };
                lvs::health::run_beside(&config, lvs::health::load, &dir, nodest).await
            }
            Cmd::Check { config, test, .. } => check_config(&config, test),
            Cmd::SyncStats { pin_path } => {
                lvs::sync::control::stats_text(&tables::pin_path(pin_path.as_deref()))
                    .map(|t| print!("{t}"))
            }
        }
    });
    if let Err(e) = result {
        eprintln!("lvs: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_name_a_state_in_any_case() {
        assert_eq!(
            parse_timeout("close_wait=30"),
            Ok((lvs_common::state::CLOSE_WAIT, 30))
        );
        assert_eq!(
            parse_timeout(" ESTABLISHED = 900 "),
            Ok((lvs_common::state::ESTABLISHED, 900))
        );
        assert_eq!(parse_timeout("udp=1"), Ok((lvs_common::state::UDP, 1)));
    }

    #[test]
    fn bad_timeouts_are_refused() {
        assert!(parse_timeout("close_wait")
            .unwrap_err()
            .contains("STATE=SECONDS"));
        assert!(parse_timeout("closing=30")
            .unwrap_err()
            .contains("unknown state"));
        assert!(parse_timeout("close=ten")
            .unwrap_err()
            .contains("bad number"));
        assert!(parse_timeout("close=-1").is_err());
        assert!(parse_timeout("close=0")
            .unwrap_err()
            .contains("at least 1 second"));
    }

    #[test]
    fn check_takes_a_config_and_test() {
        let cli = Cli::try_parse_from(["lvs", "check", "--config", "k.conf", "--test"]).unwrap();
        let Cmd::Check { config, test, .. } = cli.cmd else {
            panic!("not a check command");
        };
        assert_eq!((config, test), (PathBuf::from("k.conf"), true));
        assert!(Cli::try_parse_from(["lvs", "check", "--test"]).is_err());
    }

    #[test]
    fn bgp_options_need_bgp_and_default_to_debians_paths() {
        let cli = Cli::try_parse_from(["lvs", "load", "-i", "eth0", "--bgp", "bird"]).unwrap();
        let Cmd::Load {
            bgp,
            bird_socket,
            bird_include,
            withdraw,
            ..
        } = cli.cmd
        else {
            panic!("not a load command");
        };
        assert!(matches!(bgp, Some(Bgp::Bird)));
        assert_eq!(bird_socket, PathBuf::from("/run/bird/bird.ctl"));
        assert_eq!(bird_include, PathBuf::from("/etc/bird/lvs-vips.conf"));
        assert!(!withdraw);
        for extra in [
            ["--withdraw", ""],
            ["--bird-include", "/x"],
            ["--bird-socket", "/x"],
        ] {
            let mut argv = vec!["lvs", "load", "-i", "eth0"];
            argv.extend(extra.iter().filter(|a| !a.is_empty()));
            assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
        }
        assert!(Cli::try_parse_from(["lvs", "load", "-i", "eth0", "--bgp", "gobgp"]).is_err());
    }

    #[test]
    fn the_cli_takes_repeated_timeouts() {
        let cli = Cli::try_parse_from([
            "lvs",
            "load",
            "-i",
            "eth0",
            "--timeout",
            "fin_wait=5",
            "--timeout",
            "SYN_RECV=7",
        ])
        .unwrap();
        let Cmd::Load { timeouts, .. } = cli.cmd else {
            panic!("not a load command");
        };
        assert_eq!(
            timeouts,
            [
                (lvs_common::state::FIN_WAIT, 5),
                (lvs_common::state::SYN_RECV, 7)
            ]
        );
        assert!(Cli::try_parse_from(["lvs", "load", "-i", "eth0", "--timeout", "x=1"]).is_err());
    }

    #[test]
    fn expire_nodest_conn_goes_with_a_checker() {
        let load = ["lvs", "load", "-i", "eth0", "--expire-nodest-conn"];
        assert!(Cli::try_parse_from(load).is_err(), "needs --config");
        let cli = Cli::try_parse_from([&load[..], &["--config", "k.conf"]].concat()).unwrap();
        let Cmd::Load {
            expire_nodest_conn, ..
        } = cli.cmd
        else {
            panic!("not load")
        };
        assert!(expire_nodest_conn);
        let check = ["lvs", "check", "--config", "k.conf", "--expire-nodest-conn"];
        assert!(Cli::try_parse_from(check).is_ok());
        assert!(Cli::try_parse_from([&check[..], &["--test"]].concat()).is_err());
    }

    #[test]
    fn config_and_rules_are_exclusive() {
        let both = [
            "lvs", "load", "-i", "eth0", "--config", "k.conf", "--rules", "r",
        ];
        let e = Cli::try_parse_from(both).err().expect("refused");
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        assert!(Cli::try_parse_from(["lvs", "load", "-i", "eth0", "--config", "k.conf"]).is_ok());
    }
}
