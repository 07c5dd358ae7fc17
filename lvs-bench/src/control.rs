//! Section 5: the control plane. `lvsadm -R` of large configurations (and
//! `-S`, `-C` of them), and building one service's scheduler table.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use lvs_lab::Lab;

use crate::{
    frames::{filler_vip, real_addr},
    report::{short_error, Align, Section, Table},
    stats::{fmt_duration, fmt_ratio_of, fmt_us, group, median},
    Opts, Progress,
};
use lvs::{loader::Sizes, model::Scheduler, schedtab, testbed::Director};

/// `ipvsadm -S -n` text for `services` services (10.200.x.y:80, rr), each
/// with the same `reals` NAT real servers (10.211.x.y:80).
pub fn restore_text(services: u32, reals: u32) -> String {
    let mut s = String::with_capacity((services * (1 + reals) * 48) as usize);
    for i in 0..services {
        let vip = filler_vip(i);
        s += &format!("-A -t {vip}:80 -s rr\n");
        for r in 0..reals {
            s += &format!("-a -t {vip}:80 -r {}:80 -m -w 1\n", real_addr(r));
        }
    }
    s
}

/// Outcome of one timed command.
#[derive(Clone, Debug)]
pub enum Timed {
    Done(Duration, String),
    TimedOut(Duration),
    Failed(String),
}

/// Runs `cmd` with `stdin`, killing it after `limit`.
fn timed(mut cmd: Command, stdin: &str, limit: Duration) -> Result<Timed> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context("spawning lvsadm")?;
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stdout }, &mut s);
        s
    });
    loop {
        if let Some(status) = child.try_wait()? {
            let took = start.elapsed();
            let _ = writer.join();
            let out = reader.join().unwrap_or_default();
            if status.success() {
                return Ok(Timed::Done(took, out));
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return Ok(Timed::Failed(format!("{status}: {}", err.trim())));
        }
        if start.elapsed() > limit || lvs_lab::interrupt::requested() {
            let _ = child.kill();
            let _ = child.wait();
            lvs_lab::interrupt::check()?;
            return Ok(Timed::TimedOut(start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn run(opts: &Opts, progress: &Progress, sec: &mut Section) -> Result<()> {
    let sizes: Vec<u32> = opts.pick(vec![100, 1_000], vec![100, 1_000, 10_000]);
    let reals = 10u32;
    let limit = Duration::from_secs(opts.pick(60, 300));
    sec.intro = format!(
        "`lvsadm -R` restores a whole `ipvsadm -S -n` file as one validated change (services \
         10.200.x.y:80, rr, each with the same {reals} NAT real servers), into a director \
         loaded as `lvs load --max-services 10000 --max-reals 100000` would load it (same \
         loader, maps pinned, not attached). Then `lvsadm -S -n` saves it back and `lvsadm -C` \
         clears it. Wall time of each command, process start included; a command still running \
         after {} is stopped and reported as such.",
        fmt_duration(limit)
    );
    // Scheduler tables of one service with 1 000 real servers.
    progress.step("scheduler tables");
    let n = 1000usize;
    let members: Vec<schedtab::Member> = (0..n as u32)
        .map(|i| schedtab::Member::new(real_addr(i).into(), 80, 1 + i % 4))
        .collect();
    let iters: usize = opts.pick(200, 2000);
    let mut bt = Table::new(&["scheduler table", "entries", "build time", "× wrr"])
        .caption("**Scheduler table for one service with 1 000 real servers** (weights 1–4)")
        .align(0, Align::Left);
    let time_build = |s: Scheduler| -> Result<(usize, f64)> {
        let mut samples = Vec::with_capacity(iters);
        let mut len = 0;
        for _ in 0..iters {
            let start = Instant::now();
            let t = schedtab::table(s, &members)?;
            samples.push(start.elapsed().as_secs_f64() * 1e6);
            len = t.len();
        }
        Ok((len, median(&samples).unwrap_or(f64::NAN)))
    };
    let (wlen, wus) = time_build(Scheduler::Wrr)?;
    bt.row([
        "wrr (IPVS's weighted round-robin sequence)".to_owned(),
        group(wlen as i64),
        fmt_us(wus),
        "1.00×".to_owned(),
    ]);
    let mh_landed = match time_build(Scheduler::Mh) {
        Ok((len, us)) if len > 0 => {
            bt.row([
                "mh (Maglev lookup table)".to_owned(),
                group(len as i64),
                fmt_us(us),
                fmt_ratio_of(us, wus),
            ]);
            true
        }
        Ok(_) => {
            bt.row([
                "mh (Maglev lookup table)".to_owned(),
                "not landed".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
            ]);
            false
        }
        Err(e) => {
            bt.row([
                "mh (Maglev lookup table)".to_owned(),
                "not landed".to_owned(),
                short_error(&format!("{e:#}")),
                "–".to_owned(),
            ]);
            false
        }
    };
    sec.tables.push(bt);
    sec.note(format!(
        "Table builds are timed in-process (`lvs::schedtab::table`, what the table store calls \
         on every change of a service), median of {} builds.{}",
        group(iters as i64),
        if mh_landed {
            ""
        } else {
            " The mh row reads \"not landed\" while the table store builds no Maglev table; \
             the wrr row is the stand-in, clearly not the same algorithm."
        }
    ));
    let lab = Lab::new("bc")?;
    let pin = lab.pin_dir()?;
    let director = Director::load(
        &pin,
        Sizes {
            max_services: 10_000,
            max_reals: 100_000,
            ..Sizes::default()
        },
        Default::default(),
    )?;
    let lvsadm = opts.lvsadm();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(&lvsadm);
        c.env("LVS_PIN_PATH", &pin).args(args);
        c
    };
    let mut t = Table::new(&[
        "configuration",
        "lvsadm -R",
        "per service",
        "× smallest",
        "lvsadm -S -n",
        "lvsadm -C",
    ]);
    let mut base_per = f64::NAN;
    for &n in &sizes {
        let label = format!("{} services × {reals} real servers", group(n as i64));
        progress.step(&format!("lvsadm -R: {label}"));
        let text = restore_text(n, reals);
        match timed(cmd(&["-R"]), &text, limit)? {
            Timed::Done(d, _) => {
                let per = d.as_secs_f64() * 1e6 / n as f64;
                if base_per.is_nan() {
                    base_per = per;
                }
                progress.step(&format!("lvsadm -S -n: {label}"));
                let save = match timed(cmd(&["-S", "-n"]), "", limit)? {
                    Timed::Done(d, out) => {
                        let lines = out.lines().count() as u32;
                        if lines != n * (1 + reals) {
                            sec.note(format!(
                                "`lvsadm -S -n` of {label} printed {lines} lines, expected {}.",
                                n * (1 + reals)
                            ));
                        }
                        fmt_duration(d)
                    }
                    Timed::TimedOut(d) => format!("> {} (stopped)", fmt_duration(d)),
                    Timed::Failed(e) => format!("failed: {e}"),
                };
                progress.step(&format!("lvsadm -C: {label}"));
                let clear = match timed(cmd(&["-C"]), "", limit)? {
                    Timed::Done(d, _) => fmt_duration(d),
                    Timed::TimedOut(d) => format!("> {} (stopped)", fmt_duration(d)),
                    Timed::Failed(e) => format!("failed: {e}"),
                };
                t.row([
                    label,
                    fmt_duration(d),
                    fmt_us(per),
                    fmt_ratio_of(per, base_per),
                    save,
                    clear,
                ]);
            }
            Timed::TimedOut(d) => {
                t.row([
                    label.clone(),
                    format!("> {} (stopped)", fmt_duration(d)),
                    format!("> {}", fmt_us(d.as_secs_f64() * 1e6 / n as f64)),
                    "–".to_owned(),
                    "–".to_owned(),
                    "–".to_owned(),
                ]);
                sec.note(format!(
                    "`lvsadm -R` of {label} did not finish within {}: the table store's \
                     planner is superlinear in the number of services (see the growth \
                     per service above).",
                    fmt_duration(limit)
                ));
                // Whatever it left is cleared before the next step.
                let _ = timed(cmd(&["-C"]), "", limit);
                break;
            }
            Timed::Failed(e) => bail!("lvsadm -R of {label} failed: {e}"),
        }
    }
    t.caption = Some("**Bulk configuration**".to_owned());
    sec.tables.insert(0, t);

    drop(director);
    drop(lab);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_files() {
        let t = restore_text(2, 3);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2 * (1 + 3));
        assert_eq!(lines[0], "-A -t 10.200.0.1:80 -s rr");
        assert_eq!(lines[1], "-a -t 10.200.0.1:80 -r 10.211.1.1:80 -m -w 1");
        assert_eq!(lines[4], "-A -t 10.200.0.2:80 -s rr");
        assert_eq!(restore_text(10_000, 10).lines().count(), 110_000);
    }
}
