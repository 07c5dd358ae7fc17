//! `cargo test` over the workspace, after `cargo xtask lint` (a lint
//! failure fails the run) and `cargo xtask package` (whose .deb a test
//! installs), with cargo's per-binary result lines repeated at
//! the very end so a CI log's tail tells the whole story.

use std::{
    io::{BufRead, BufReader, Write},
    process::ExitCode,
};

use anyhow::{Context, Result};

use crate::{cmd, lint, package, setup};

pub fn run(args: &[String]) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask test: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &[String]) -> Result<ExitCode> {
    setup::run(setup::Verbosity::Quiet)?;
    if !lvs_lab::is_root() {
        eprintln!();
        eprintln!("**********************************************************");
        eprintln!("*** NOT ROOT: namespace tests will be SKIPPED.         ***");
        eprintln!("*** Run `sudo -E cargo xtask test` for the full suite. ***");
        eprintln!("**********************************************************");
        eprintln!();
    }
    lint::check()?;
    // Built before the tests, once: `tests/it/package.rs` installs it into
    // a scratch root (a release build, incremental after the first).
    let deb = package::run()?;
    let mut cargo = cmd::cargo();
    cargo
        .current_dir(cmd::repo_root())
        .arg("test")
        .env(package::DEB_ENV, &deb);
    let picks_packages = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a.starts_with("-p") || a.starts_with("--package"));
    if !picks_packages {
        // lvs-ebpf only builds for the BPF target (the build scripts of
        // lvs-user and lvs-bench do that), never for the host.
        cargo.args(["--workspace", "--exclude", "lvs-ebpf"]);
    }
    cargo.arg("--no-fail-fast").args(args);
    eprintln!("+ {}", cmd::show(&cargo));

    // One pipe for both streams keeps cargo's "Running …" lines (stderr)
    // in order with the test binaries' results (stdout).
    let (reader, writer) = std::io::pipe()?;
    cargo.stdout(writer.try_clone()?).stderr(writer);
    let mut child = cargo.spawn().context("running cargo test")?;
    drop(cargo);

    let mut summary = Summary::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(reader).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        summary.see(&line);
    }
    let status = child.wait()?;
    summary.print(&mut out, status.success())?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Default)]
struct Summary {
    current: String,
    results: Vec<(String, String)>,
}

impl Summary {
    fn see(&mut self, line: &str) {
        let t = line.trim();
        if let Some(what) = t
            .strip_prefix("Running ")
            .or_else(|| t.strip_prefix("Doc-tests "))
        {
            self.current = what.to_owned();
        } else if t.starts_with("test result:") {
            self.results
                .push((std::mem::take(&mut self.current), t.to_owned()));
        }
    }

    fn print(&self, out: &mut impl Write, ok: bool) -> std::io::Result<()> {
        let verdict = if ok { "ok" } else { "FAILED" };
        writeln!(
            out,
            "\n==== xtask test: {verdict}; results of {} test binaries ====",
            self.results.len()
        )?;
        for (what, result) in &self.results {
            writeln!(out, "{what}\n    {result}")?;
        }
        // One closing line over every binary, in the plain form CI reads.
        let (passed, failed, skipped) = self.totals();
        writeln!(
            out,
            "total: {passed} passed, {failed} failed, {skipped} skipped"
        )
    }

    /// Sums "N passed; M failed; K ignored" over every result line.
    fn totals(&self) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for (_, line) in &self.results {
            let words: Vec<&str> = line.split([' ', ';', '.']).collect();
            for w in words.windows(2) {
                let Ok(n) = w[0].parse::<u64>() else { continue };
                match w[1] {
                    "passed" => t.0 += n,
                    "failed" => t.1 += n,
                    "ignored" => t.2 += n,
                    _ => {}
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_pairs_binaries_with_results() {
        let mut s = Summary::default();
        for l in [
            "     Running unittests src/lib.rs (target/debug/deps/lvs_lab-1)",
            "test names::tests::liveness ... ok",
            "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
            "   Doc-tests lvs_lab",
            "test result: ok. 1 passed; 0 failed",
        ] {
            s.see(l);
        }
        assert_eq!(s.results.len(), 2);
        assert_eq!(
            s.results[0].0,
            "unittests src/lib.rs (target/debug/deps/lvs_lab-1)"
        );
        assert_eq!(s.results[1].0, "lvs_lab");
        let mut out = Vec::new();
        s.print(&mut out, true).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("    test result: ok. 1 passed; 0 failed\n"),
            "{out}"
        );
        assert!(
            out.ends_with("\ntotal: 6 passed, 0 failed, 0 skipped\n"),
            "{out}"
        );
    }
}
