//! `lvs-bench` (run by `cargo xtask bench`): what the director costs, in
//! six sections, written as one markdown report plus an SVG of the scale
//! curves. A benchmark, not a test: it prints numbers and ratios and
//! asserts nothing about time.
//!
//! 1. [`progcost`]: ns/packet of each data-path case with BPF_PROG_TEST_RUN,
//!    next to the XDP_DROP and MAC-swap XDP_TX baselines.
//! 2. [`scale`]: the same with up to a million tracked connections, 10 000
//!    services and 1 000 real servers per service.
//! 3. [`live`]: live frames through veth links, generated in the kernel
//!    (BPF_F_TEST_XDP_LIVE_FRAMES), director vs plain XDP_TX/XDP_DROP.
//! 4. [`e2e`]: HTTP through the director and through iptables, nftables
//!    and HAProxy, measured with wrk between namespaces.
//! 5. [`control`]: `lvsadm -R` of large configurations and scheduler-table
//!    builds.
//! 6. [`connsync`]: section 3's live forwarding with and without the
//!    connection-sync master walking 100 000 tracked connections.
//!
//! The pure parts (statistics, wrk parsing, report and SVG rendering,
//! frames) are unit-tested; the rest needs root and runs in namespaces of
//! its own, all removed on exit (Ctrl-C included).

pub mod connsync;
pub mod control;
pub mod e2e;
pub mod fixture;
pub mod frames;
pub mod live;
pub mod progcost;
pub mod report;
pub mod scale;
pub mod stats;
pub mod svg;
pub mod sysinfo;
pub mod wrk;

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The baseline programs (`bench_drop`, `bench_swap`), lvs-ebpf's
/// `lvs-bench` object as built by this crate's `build.rs`.
pub static BENCH_OBJ: &[u8] = aya::include_bytes_aligned!(env!("LVS_EBPF_BENCH"));

/// What a run covers and how long it may take.
#[derive(Clone, Debug)]
pub struct Opts {
    /// The smaller version (under two minutes).
    pub quick: bool,
    /// Where `lvs` and `lvsadm` are (the benchmark's own directory).
    pub bin_dir: PathBuf,
}

impl Opts {
    pub fn lvs(&self) -> PathBuf {
        self.bin_dir.join("lvs")
    }
    pub fn lvsadm(&self) -> PathBuf {
        self.bin_dir.join("lvsadm")
    }
    /// `quick` or `full`, whichever applies.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// The one-line progress display on stderr: section, step, elapsed time.
/// On a terminal the line is rewritten in place; otherwise each step is a
/// line of its own (throttled to one per second for fast tickers).
pub struct Progress {
    start: Instant,
    tty: bool,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    section: String,
    last: Option<Instant>,
    last_step: String,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(ProgressState {
                section: String::new(),
                last: None,
                last_step: String::new(),
            }),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn section(&self, name: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.section = name.to_owned();
        s.last = None;
        drop(s);
        self.step("starting");
    }

    /// A new step; always shown.
    pub fn step(&self, what: &str) {
        self.show(what, true);
    }

    /// A counter update within a step; shown at most every 250 ms (1 s off
    /// a terminal).
    pub fn tick(&self, what: &str, done: usize, total: usize) {
        self.show(
            &format!(
                "{what} {}/{}",
                stats::group(done as i64),
                stats::group(total as i64)
            ),
            false,
        );
    }

    fn show(&self, what: &str, force: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let every = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        if !force && s.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        if !force && !self.tty && s.last_step == what {
            return;
        }
        s.last = Some(Instant::now());
        s.last_step = what.to_owned();
        let line = format!(
            "[{} {}] {what}",
            stats::fmt_clock(self.start.elapsed()),
            s.section
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", truncate(&line, 150));
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Ends the in-place line (before other output).
    pub fn finish_line(&self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A small deterministic generator (xorshift64*) for sampling flows.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            let x = a.below(1000);
            assert_eq!(x, b.below(1000));
            assert!(x < 1000);
        }
        assert_eq!(Rng::new(0).below(1), 0);
        let mut r = Rng::new(7);
        let distinct: std::collections::HashSet<u64> = (0..100).map(|_| r.below(1 << 40)).collect();
        assert!(distinct.len() > 95);
    }

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate("µµµ", 2), "µµ");
        assert_eq!(truncate("ab", 5), "ab");
    }

    #[test]
    fn opts_pick() {
        let o = Opts {
            quick: true,
            bin_dir: "/x".into(),
        };
        assert_eq!(o.pick(1, 2), 1);
        assert_eq!(o.lvsadm(), PathBuf::from("/x/lvsadm"));
    }
}
