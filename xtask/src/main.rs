//! `cargo xtask …`: set up, build, demo and test lvs-xdp.

mod bench;
mod build;
mod cmd;
mod demo;
mod fuzz;
mod lint;
mod package;
mod setup;
mod test;

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "lvs-xdp developer tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent).
    Setup,
    /// Build target/release/lvs and target/release/lvsadm.
    Build,
    /// The seed tutorial's LVS setup, in network namespaces.
    Demo(demo::Opts),
    /// rustfmt --check and clippy -D warnings over the workspace (lvs-ebpf
    /// for the BPF target).
    Lint,
    /// Build the Debian package (cargo-deb): prints the .deb's path.
    Package,
    /// Lint, build the package, then run the workspace's tests (namespace
    /// tests need root).
    Test {
        /// Passed on to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks: program cost, scale, live veth, wrk end to end, control
    /// plane; report in bench-results/.
    Bench(bench::Opts),
    /// The data-path fuzzer for any number of frames (release build).
    Fuzz(fuzz::Opts),
    /// The demo's fallback web server when nginx is missing.
    #[command(hide = true)]
    ServeHttp {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        body: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(setup::Verbosity::Report),
        Task::Build => build::run().map(drop),
        Task::Demo(opts) => demo::run(opts),
        Task::Lint => lint::run(),
        Task::Package => package::run().map(|p| println!("{}", p.display())),
        Task::Test { args } => return test::run(&args),
        Task::Bench(opts) => bench::run(opts),
        Task::Fuzz(opts) => fuzz::run(opts),
        Task::ServeHttp { addr, body } => demo::serve_http(addr, &body),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
