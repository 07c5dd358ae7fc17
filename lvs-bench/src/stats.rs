//! Small statistics and number formatting for the benchmark report.

use std::time::Duration;

/// The median (mean of the middle two for an even count); `None` if empty
/// or if any value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// The `p`-th percentile (0..=100) by linear interpolation between the
/// closest ranks; `None` if empty or if any value is NaN.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// Median of integers, as `f64`.
pub fn median_u32(values: &[u32]) -> Option<f64> {
    median(&values.iter().map(|&v| v as f64).collect::<Vec<_>>())
}

/// `x / base`, when both are usable numbers and `base` is not zero.
pub fn ratio(x: f64, base: f64) -> Option<f64> {
    (x.is_finite() && base.is_finite() && base != 0.0).then(|| x / base)
}

/// A ratio as the report prints it: `1.00×`, `12.3×`, `250×`; `–` when
/// there is none.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "–".to_owned(),
        Some(r) if r.abs() >= 100.0 => format!("{r:.0}×"),
        Some(r) if r.abs() >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
    }
}

/// `ratio` then `fmt_ratio`.
pub fn fmt_ratio_of(x: f64, base: f64) -> String {
    fmt_ratio(ratio(x, base))
}

/// Nanoseconds with one decimal below 1000, else whole.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "–".to_owned()
    } else if ns.abs() < 1000.0 {
        format!("{ns:.1}")
    } else {
        group(ns.round() as i64)
    }
}

/// An integer with thin groups of three digits: `1 048 576`.
pub fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A rate per second: `78 642` (whole) or `4.21 M` for millions.
pub fn fmt_rate(per_s: f64) -> String {
    if !per_s.is_finite() {
        "–".to_owned()
    } else if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else {
        group(per_s.round() as i64)
    }
}

/// Millions per second with two decimals.
pub fn fmt_mpps(pps: f64) -> String {
    if pps.is_finite() {
        format!("{:.2}", pps / 1e6)
    } else {
        "–".to_owned()
    }
}

/// Bytes as `17.0 MiB` (binary units) with the exact count for small ones.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A duration in the unit that suits it: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// Microseconds with a unit: `3.2 µs`, `1.25 ms`.
pub fn fmt_us(us: f64) -> String {
    if !us.is_finite() {
        "–".to_owned()
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

/// Elapsed time as `m:ss`.
pub fn fmt_clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 100.0), Some(5.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 25.0), Some(2.0));
        assert_eq!(percentile(&[0.0, 10.0], 90.0), Some(9.0));
        assert_eq!(median_u32(&[7, 1, 4]), Some(4.0));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(50.0, 25.0), Some(2.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(fmt_ratio(Some(1.0)), "1.00×");
        assert_eq!(fmt_ratio(Some(0.456)), "0.46×");
        assert_eq!(fmt_ratio(Some(12.34)), "12.3×");
        assert_eq!(fmt_ratio(Some(250.4)), "250×");
        assert_eq!(fmt_ratio(None), "–");
        assert_eq!(fmt_ratio_of(145.0, 25.0), "5.80×");
    }

    #[test]
    fn number_formats() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1 000");
        assert_eq!(group(1_048_576), "1 048 576");
        assert_eq!(group(-12345), "-12 345");
        assert_eq!(fmt_ns(24.26), "24.3");
        assert_eq!(fmt_ns(1234.4), "1 234");
        assert_eq!(fmt_ns(f64::NAN), "–");
        assert_eq!(fmt_rate(78641.59), "78 642");
        assert_eq!(fmt_rate(4_210_000.0), "4.21 M");
        assert_eq!(fmt_mpps(4_215_000.0), "4.21");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(fmt_bytes(17 * 1024 * 1024 + 1), "17.0 MiB");
        assert_eq!(fmt_duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(fmt_duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(fmt_duration(Duration::from_millis(4560)), "4.56 s");
        assert_eq!(fmt_duration(Duration::from_secs(321)), "321 s");
        assert_eq!(fmt_us(3.21), "3.2 µs");
        assert_eq!(fmt_us(42.4), "42 µs");
        assert_eq!(fmt_us(1250.0), "1.25 ms");
        assert_eq!(fmt_clock(Duration::from_secs(75)), "1:15");
    }
}
