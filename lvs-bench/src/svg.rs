//! A hand-written SVG line plot: panels side by side, each with a
//! logarithmic x axis (table sizes) and a linear y axis from zero.

use std::fmt::Write as _;

/// One curve: (x, y) points, drawn in x order.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const PANEL_W: f64 = 360.0;
const PANEL_H: f64 = 300.0;
const MARGIN_L: f64 = 56.0;
const MARGIN_R: f64 = 22.0;
const MARGIN_T: f64 = 34.0;
const MARGIN_B: f64 = 92.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Escapes text for SVG character data and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" upper bound and step for a linear axis from 0 to `max`.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// Decades covering `[min, max]` (both > 0): `(first exponent, last exponent)`.
pub fn decades(min: f64, max: f64) -> (i32, i32) {
    let lo = min.max(f64::MIN_POSITIVE).log10().floor() as i32;
    let hi = max.max(f64::MIN_POSITIVE).log10().ceil() as i32;
    (lo, hi.max(lo + 1))
}

fn tick_label(v: f64) -> String {
    if v >= 1e6 && (v / 1e6).fract() == 0.0 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 && (v / 1e3).fract() == 0.0 {
        format!("{}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// A y-axis value: whole numbers as such, others with one decimal.
fn value_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The whole plot as an SVG document.
pub fn render(title: &str, panels: &[Panel]) -> String {
    let n = panels.len().max(1) as f64;
    let width = PANEL_W * n;
    let height = PANEL_H + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        width / 2.0,
        xml_escape(title)
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut s, p, i as f64 * PANEL_W, 24.0);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, p: &Panel, x0: f64, y0: f64) {
    let left = x0 + MARGIN_L;
    let right = x0 + PANEL_W - MARGIN_R;
    let top = y0 + MARGIN_T;
    let bottom = y0 + PANEL_H - MARGIN_B;
    let pts: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|se| se.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && *x > 0.0 && y.is_finite())
        .collect();
    let xmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max);
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let (d0, d1) = if pts.is_empty() {
        (0, 1)
    } else {
        decades(xmin, xmax)
    };
    let (ytop, ystep) = nice_axis(ymax);
    let sx = |x: f64| left + (x.log10() - d0 as f64) / (d1 - d0) as f64 * (right - left);
    let sy = |y: f64| bottom - y / ytop * (bottom - top);

    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12" font-weight="bold">{}</text>"#,
        (left + right) / 2.0,
        top - 12.0,
        xml_escape(&p.title)
    );
    // Grid and y ticks.
    let mut y = 0.0;
    while y <= ytop + ystep / 2.0 {
        let py = sy(y);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 4.0,
            py + 4.0,
            value_label(y)
        );
        y += ystep;
    }
    // x ticks at decades.
    for d in d0..=d1 {
        let v = 10f64.powi(d);
        let px = sx(v);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#eee"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            bottom + 14.0,
            tick_label(v)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        right - left,
        bottom - top
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        bottom + 30.0,
        xml_escape(&p.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
        x0 + 14.0,
        (top + bottom) / 2.0,
        x0 + 14.0,
        (top + bottom) / 2.0,
        xml_escape(&p.y_label)
    );
    for (i, se) in p.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut sp: Vec<(f64, f64)> = se
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && *x > 0.0 && y.is_finite())
            .collect();
        sp.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        if !sp.is_empty() {
            let path: Vec<String> = sp
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for &(x, y) in &sp {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                    sx(x),
                    sy(y)
                );
            }
        }
        let ly = bottom + 46.0 + i as f64 * 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{color}" stroke-width="2"/>"#,
            ly - 4.0,
            left + 18.0,
            ly - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{ly:.1}">{}</text>"#,
            left + 24.0,
            xml_escape(&se.label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        assert_eq!(nice_axis(0.0), (1.0, 0.25));
        assert_eq!(nice_axis(97.0), (100.0, 20.0));
        assert_eq!(nice_axis(145.0), (150.0, 50.0));
        assert_eq!(nice_axis(12.0), (12.5, 2.5));
        assert_eq!(decades(1.0, 1_000_000.0), (0, 6));
        assert_eq!(decades(2.0, 1000.0), (0, 3));
        assert_eq!(decades(5.0, 5.0), (0, 1));
        assert_eq!(tick_label(1e6), "1M");
        assert_eq!(tick_label(1000.0), "1k");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(value_label(1500.0), "1500");
        assert_eq!(value_label(2.5), "2.5");
    }

    #[test]
    fn escapes() {
        assert_eq!(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn renders_panels_and_series() {
        let panels = vec![
            Panel {
                title: "connections".into(),
                x_label: "tracked connections".into(),
                y_label: "ns/packet".into(),
                series: vec![
                    Series {
                        label: "same flow".into(),
                        points: vec![(1.0, 60.0), (1000.0, 61.0), (1e6, 63.0)],
                    },
                    Series {
                        label: "random <flows>".into(),
                        points: vec![(1.0, 60.0), (1e6, 140.0), (f64::NAN, 1.0)],
                    },
                ],
            },
            Panel {
                title: "empty".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                series: vec![],
            },
        ];
        let svg = render("scale", &panels);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Three points plus two (the NaN one dropped).
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("random &lt;flows&gt;"));
        assert!(svg.contains(">1M</text>"));
        assert!(!svg.contains("NaN"));
        // Balanced element counts for the few container-like tags.
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
    }
}
