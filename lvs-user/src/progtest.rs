//! Running XDP programs on crafted frames with BPF_PROG_TEST_RUN: the one
//! caller of the syscall, for the sweeper (`conn_expire`, `conn_fix`), the
//! tests and the benchmarks (single runs, repeats and live frames).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};

/// `struct xdp_md` for BPF_PROG_TEST_RUN: data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex (native endianness).
pub fn xdp_md(ifindex: u32, len: usize) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// One BPF_PROG_TEST_RUN call's outcome.
#[derive(Clone, Debug)]
pub struct RunOut {
    pub action: u32,
    /// Wall time of the whole call (syscall included).
    pub wall: Duration,
    /// The kernel's per-repeat time, integer ns (truncated).
    pub kernel_ns: u32,
    /// The frame as the program left it (only when asked for).
    pub out: Option<Vec<u8>>,
}

/// Runs `prog` on `frame` as received on `ifindex`, `repeat` times, in the
/// calling thread's namespace; the output frame only with `want_out`.
pub fn test_run(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    want_out: bool,
) -> Result<RunOut> {
    run(prog, frame, ifindex, repeat, want_out, None)
}

/// Sends `frame` `repeat` times as live frames (BPF_F_TEST_XDP_LIVE_FRAMES,
/// in batches of `batch`) from `ifindex`: what `prog` returns is carried
/// out (XDP_TX transmits, XDP_REDIRECT redirects), so this generates
/// traffic in the kernel.
pub fn test_run_live(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    batch: u32,
) -> Result<RunOut> {
    run(prog, frame, ifindex, repeat, false, Some(batch))
}

fn run(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    want_out: bool,
    live_batch: Option<u32>,
) -> Result<RunOut> {
    let ctx = xdp_md(ifindex, frame.len());
    let mut out = if want_out {
        Some(vec![0u8; frame.len() + 256])
    } else {
        None
    };
    let attrs = match live_batch {
        Some(b) => TestRunAttrs::new().xdp_live_frames(b),
        None => TestRunAttrs::new(),
    };
    let start = Instant::now();
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: out.as_deref_mut(),
            ctx_in: Some(&ctx),
            repeat,
            attrs,
            ..Default::default()
        })
        .map_err(|e| anyhow!("BPF_PROG_TEST_RUN: {e}"))?;
    let wall = start.elapsed();
    if let Some(o) = out.as_mut() {
        o.truncate(r.data_size_out as usize);
    }
    Ok(RunOut {
        action: r.return_value,
        wall,
        kernel_ns: r.duration.as_nanos() as u32,
        out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_md_layout() {
        let c = xdp_md(7, 64);
        assert_eq!(&c[0..4], &[0; 4]);
        assert_eq!(u32::from_ne_bytes(c[4..8].try_into().unwrap()), 64);
        assert_eq!(u32::from_ne_bytes(c[12..16].try_into().unwrap()), 7);
    }
}
