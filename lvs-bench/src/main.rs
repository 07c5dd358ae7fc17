//! `lvs-bench`: the benchmarks of `cargo xtask bench` (see the `lvs_bench` library).
//! Needs root; writes `bench-YYYYMMDD-HHMM.md` and `.svg` to `--out`.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use lvs_bench::{
    connsync, control, e2e, live, progcost,
    report::{file_stem, short_error, Report, Section},
    scale, svg, sysinfo, Opts, Progress,
};

#[derive(Parser)]
#[command(
    name = "lvs-bench",
    about = "lvs-xdp benchmarks (root; network namespaces)"
)]
struct Cli {
    /// The smaller version (under two minutes).
    #[arg(long)]
    quick: bool,
    /// Directory for the report and the plot.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Sections to run, e.g. `1,2,5` (default: all).
    #[arg(long, value_delimiter = ',')]
    sections: Option<Vec<u8>>,
    /// Where `lvs` and `lvsadm` are [default: next to this binary].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

const TITLES: [&str; 6] = [
    "1. Program cost (BPF_PROG_TEST_RUN)",
    "2. Scale: connections, services, real servers",
    "3. Live packets on veth",
    "4. End-to-end TCP (wrk)",
    "5. Control plane",
    "6. Connection sync beside forwarding",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lvs-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if !lvs_lab::is_root() {
        bail!("the benchmarks need root (network namespaces, XDP, bpffs)");
    }
    lvs_lab::interrupt::install();
    let bin_dir = match cli.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    for b in ["lvs", "lvsadm"] {
        if !bin_dir.join(b).is_file() {
            bail!(
                "{} not found (build with `cargo build --release -p lvs-user -p lvs-bench`, or pass --bin-dir)",
                bin_dir.join(b).display()
            );
        }
    }
    let opts = Opts {
        quick: cli.quick,
        bin_dir,
    };
    let selected = |n: u8| cli.sections.as_ref().is_none_or(|s| s.contains(&n));
    let (y, mo, d, h, mi) = sysinfo::local_time();
    let stem = file_stem(y, mo, d, h, mi);
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let md_path = cli.out.join(format!("{stem}.md"));
    let svg_path = cli.out.join(format!("{stem}.svg"));

    let mut report = Report {
        title: format!(
            "lvs-xdp benchmarks{}",
            if opts.quick { " (--quick)" } else { "" }
        ),
        env: vec![
            ("kernel (uname -r)".into(), sysinfo::kernel_release()),
            (
                "CPU".into(),
                format!("{} ({} CPUs)", sysinfo::cpu_model(), sysinfo::cpu_count()),
            ),
            (
                "date".into(),
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} (local)"),
            ),
            (
                "mode".into(),
                if opts.quick {
                    "quick (smaller sizes, fewer and shorter runs)".into()
                } else {
                    "full".into()
                },
            ),
        ],
        sections: Vec::new(),
        svg_name: None,
    };
    let progress = Progress::new();
    // Full error texts (verifier logs, command output) go to a file of
    // their own; the report and the terminal get a short form.
    let err_path = cli.out.join(format!("{stem}-errors.txt"));
    let mut errors = String::new();
    let mut panels = Vec::new();
    for (i, title) in TITLES.iter().enumerate() {
        let n = i as u8 + 1;
        let mut sec = Section::new(title);
        if !selected(n) {
            sec.skipped = true;
            report.sections.push(sec);
            continue;
        }
        if lvs_lab::interrupt::requested() {
            sec.error = Some("interrupted before it started".into());
            report.sections.push(sec);
            continue;
        }
        progress.section(title);
        let start = Instant::now();
        let r = match n {
            1 => progcost::run(&opts, &progress, &mut sec),
            2 => scale::run(&opts, &progress, &mut sec, &mut panels),
            3 => live::run(&opts, &progress, &mut sec),
            4 => e2e::run(&opts, &progress, &mut sec),
            5 => control::run(&opts, &progress, &mut sec),
            _ => connsync::run(&opts, &progress, &mut sec),
        };
        sec.elapsed = start.elapsed();
        if let Err(e) = r {
            progress.finish_line();
            let full = format!("{e:#}");
            eprintln!("lvs-bench: section {title} failed: {}", short_error(&full));
            errors.push_str(&format!("== {title}\n{full}\n\n"));
            let _ = std::fs::write(&err_path, &errors);
            sec.error = Some(full);
        }
        report.sections.push(sec);
        // Written after every section, so an interrupted run keeps what it
        // measured.
        write(&mut report, &panels, &md_path, &svg_path)?;
    }
    progress.finish_line();
    write(&mut report, &panels, &md_path, &svg_path)?;
    let md = report.to_markdown();
    println!("{md}");
    println!("report: {}", md_path.display());
    if !panels.is_empty() {
        println!("plot:   {}", svg_path.display());
    }
    println!(
        "total time: {}",
        lvs_bench::stats::fmt_clock(progress.elapsed())
    );
    let failed = report.failed_sections();
    if !failed.is_empty() {
        eprintln!(
            "lvs-bench: sections that did not finish: {}",
            failed.join("; ")
        );
        eprintln!("lvs-bench: full errors in {}", err_path.display());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn write(
    report: &mut Report,
    panels: &[svg::Panel],
    md: &std::path::Path,
    svg_path: &std::path::Path,
) -> Result<()> {
    if !panels.is_empty() {
        std::fs::write(
            svg_path,
            svg::render("lvs-xdp: per-packet cost as the tables grow", panels),
        )
        .with_context(|| format!("writing {}", svg_path.display()))?;
        report.svg_name = svg_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
    }
    std::fs::write(md, report.to_markdown()).with_context(|| format!("writing {}", md.display()))
}
