//! Parsing `wrk` output (wrk 4.x, with or without `--latency`).

use anyhow::{anyhow, bail, Result};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl SocketErrors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// "N requests in T": completed requests and the run's length.
    pub requests: u64,
    pub seconds: f64,
    /// "Requests/sec:".
    pub requests_per_sec: f64,
    /// Thread-stats latency average (µs).
    pub latency_avg_us: Option<f64>,
    /// From the `--latency` distribution (µs).
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub errors: SocketErrors,
    /// "Non-2xx or 3xx responses:".
    pub non_2xx: u64,
}

impl WrkResult {
    /// Socket errors plus bad answers.
    pub fn failures(&self) -> u64 {
        self.errors.total() + self.non_2xx
    }
}

/// A wrk duration (`95.00us`, `1.23ms`, `2.00s`, `1.50m`, `1.00h`) in µs.
pub fn duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(v * scale)
}

/// Parses the whole output of one run.
pub fn parse(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    let mut have_total = false;
    let mut in_dist = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v
                .trim()
                .parse()
                .map_err(|_| anyhow!("bad Requests/sec line: {t:?}"))?;
            have_rps = true;
        } else if let Some(rest) = t.strip_prefix("Latency Distribution") {
            let _ = rest;
            in_dist = true;
            continue;
        } else if t.starts_with("Latency") {
            // "Latency   116.87us  170.50us   3.16ms   97.55%"
            r.latency_avg_us = t.split_whitespace().nth(1).and_then(duration_us);
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                let mut w = part.split_whitespace();
                let (Some(k), Some(v)) = (w.next(), w.next()) else {
                    continue;
                };
                let v: u64 = v.parse().unwrap_or(0);
                match k {
                    "connect" => r.errors.connect = v,
                    "read" => r.errors.read = v,
                    "write" => r.errors.write = v,
                    "timeout" => r.errors.timeout = v,
                    _ => {}
                }
            }
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if t.contains(" requests in ") {
            // "86489 requests in 1.10s, 12.54MB read"
            let mut w = t.split_whitespace();
            r.requests = w
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| anyhow!("bad totals line: {t:?}"))?;
            let dur = t
                .split(" requests in ")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(duration_us)
                .ok_or_else(|| anyhow!("bad totals line: {t:?}"))?;
            r.seconds = dur / 1e6;
            have_total = true;
        }
        if in_dist {
            // "     50%   95.00us"
            let mut w = t.split_whitespace();
            match (w.next(), w.next()) {
                (Some("50%"), Some(v)) => r.p50_us = duration_us(v),
                (Some("99%"), Some(v)) => r.p99_us = duration_us(v),
                (Some(p), Some(_)) if p.ends_with('%') => {}
                _ => in_dist = false,
            }
        }
    }
    if !have_rps || !have_total {
        bail!(
            "not wrk output (no Requests/sec or totals line):\n{}",
            out.trim_end()
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: &str = "Running 1s test @ http://127.0.0.1/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   116.87us  170.50us   3.16ms   97.55%
    Req/Sec    79.21k    11.37k   97.24k    54.55%
  Latency Distribution
     50%   95.00us
     75%  123.00us
     90%  154.00us
     99%  627.00us
  86489 requests in 1.10s, 12.54MB read
Requests/sec:  78641.59
Transfer/sec:     11.40MB
";

    const CLOSE_WITH_ERRORS: &str = "Running 2s test @ http://192.168.47.128/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.12ms    2.01ms  45.00ms   90.00%
    Req/Sec     3.10k   200.00     3.50k    70.00%
  12345 requests in 2.00s, 1.71MB read
  Socket errors: connect 3, read 2, write 0, timeout 7
  Non-2xx or 3xx responses: 4
Requests/sec:   6172.50
Transfer/sec:    876.00KB
";

    #[test]
    fn parses_keepalive_with_latency() {
        let r = parse(KEEPALIVE).unwrap();
        assert_eq!(r.requests, 86489);
        assert!((r.seconds - 1.10).abs() < 1e-9);
        assert!((r.requests_per_sec - 78641.59).abs() < 1e-6);
        assert_eq!(r.latency_avg_us, Some(116.87));
        assert_eq!(r.p50_us, Some(95.0));
        assert_eq!(r.p99_us, Some(627.0));
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn parses_errors_without_distribution() {
        let r = parse(CLOSE_WITH_ERRORS).unwrap();
        assert_eq!(r.requests, 12345);
        assert_eq!(r.latency_avg_us, Some(4120.0));
        assert_eq!(r.p99_us, None);
        assert_eq!(
            r.errors,
            SocketErrors {
                connect: 3,
                read: 2,
                write: 0,
                timeout: 7
            }
        );
        assert_eq!(r.non_2xx, 4);
        assert_eq!(r.failures(), 16);
    }

    #[test]
    fn durations() {
        assert_eq!(duration_us("95.00us"), Some(95.0));
        assert_eq!(duration_us("1.5ms"), Some(1500.0));
        assert_eq!(duration_us("2.00s"), Some(2e6));
        assert_eq!(duration_us("1.00m"), Some(60e6));
        assert_eq!(duration_us("3x"), None);
        assert_eq!(duration_us("ms"), None);
    }

    #[test]
    fn rejects_other_output() {
        assert!(parse("unable to connect to 192.168.47.128:80 Connection refused").is_err());
    }
}
