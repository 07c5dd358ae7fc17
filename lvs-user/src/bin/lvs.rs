//! `lvs`: the lvs-xdp loader and daemon.

use std::path::PathBuf;

use aya::programs::XdpMode;
use clap::{Parser, Subcommand, ValueEnum};
use lvs::{
    decap,
    loader::{self, LoadOpts, Sizes, TunnelOpts},
    tables,
};

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

#[derive(Subcommand)]
enum Cmd {
    /// Load and attach the director to every named link; runs until SIGINT/SIGTERM.
    Load {
        /// A link to attach to (repeat for several).
        #[arg(long = "iface", short = 'i', required = true)]
        ifaces: Vec<String>,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: Mode,
        /// Where to pin the maps [default: $LVS_PIN_PATH or /sys/fs/bpf/lvs].
        #[arg(long)]
        pin_path: Option<PathBuf>,
        /// Tracked connections (CONNS and REPLIES entries each).
        #[arg(long, default_value_t = Sizes::default().max_conns)]
        max_conns: u32,
        #[arg(long, default_value_t = Sizes::default().max_services)]
        max_services: u32,
        #[arg(long, default_value_t = Sizes::default().max_reals)]
        max_reals: u32,
        /// Entries of the shared scheduler table (rr/wrr sequences).
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
        #[arg(long = "timeout", value_parser = loader::parse_timeout)]
        timeouts: Vec<(u8, u32)>,
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
                max_services,
                max_reals,
                sched_table_size,
                debug,
                tunnel_source,
                tunnel_mtu,
                timeouts,
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
                    },
                    debug,
                    tunnel,
                    timeouts,
                })
                .await
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
            Cmd::Stats { pin_path } => {
                loader::print_counters(&tables::pin_path(pin_path.as_deref()))
            }
        }
    });
    if let Err(e) = result {
        eprintln!("lvs: {e:#}");
        std::process::exit(1);
    }
}
