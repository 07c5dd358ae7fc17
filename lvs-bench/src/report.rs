//! The benchmark report: markdown tables, one section per benchmark, and
//! the header naming the machine it ran on.

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::fmt_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One markdown table. Cells are plain text; `|` and newlines in them are
/// escaped so a cell can never break the table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub caption: Option<String>,
    pub headers: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns are right-aligned (numbers) except the first.
    pub fn new(headers: &[&str]) -> Table {
        let align = (0..headers.len())
            .map(|i| if i == 0 { Align::Left } else { Align::Right })
            .collect();
        Table {
            caption: None,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            align,
            rows: Vec::new(),
        }
    }

    pub fn caption(mut self, c: &str) -> Table {
        self.caption = Some(c.to_owned());
        self
    }

    /// Sets the alignment of column `i`.
    pub fn align(mut self, i: usize, a: Align) -> Table {
        if i < self.align.len() {
            self.align[i] = a;
        }
        self
    }

    /// Appends a row; short rows are padded with empty cells, long ones cut.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut r: Vec<String> = cells.into_iter().map(Into::into).collect();
        r.resize(self.headers.len(), String::new());
        self.rows.push(r);
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.caption {
            let _ = writeln!(out, "{c}\n");
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for c in cells {
                let _ = write!(s, " {} |", escape(c));
            }
            s
        };
        let _ = writeln!(out, "{}", line(&self.headers));
        let mut sep = String::from("|");
        for a in &self.align {
            sep.push_str(match a {
                Align::Left => "---|",
                Align::Right => "---:|",
            });
        }
        let _ = writeln!(out, "{sep}");
        for r in &self.rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out
    }
}

/// An error for the report: its first line, and its last one when they
/// differ (a verifier log or a command's output can be thousands of lines),
/// each cut to 300 characters.
pub fn short_error(e: &str) -> String {
    let cut = |l: &str| -> String {
        match l.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &l[..i]),
            None => l.to_owned(),
        }
    };
    let mut lines = e.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    match lines.next_back() {
        Some(last) => format!("{} … {}", cut(first), cut(last)),
        None => cut(first),
    }
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// One benchmark's results.
#[derive(Clone, Debug, Default)]
pub struct Section {
    pub title: String,
    /// What is measured and how (markdown paragraphs).
    pub intro: String,
    pub tables: Vec<Table>,
    /// Caveats and explanations, printed as a list after the tables.
    pub notes: Vec<String>,
    /// Set when the section could not finish; what it had is still shown.
    pub error: Option<String>,
    pub elapsed: Duration,
    /// Set when the section was not run at all (`--sections`).
    pub skipped: bool,
}

impl Section {
    pub fn new(title: &str) -> Section {
        Section {
            title: title.to_owned(),
            ..Section::default()
        }
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("## {}\n\n", self.title);
        if self.skipped {
            out.push_str("Not run (not selected with `--sections`).\n\n");
            return out;
        }
        if !self.intro.is_empty() {
            let _ = writeln!(out, "{}\n", self.intro.trim_end());
        }
        if let Some(e) = &self.error {
            let _ = writeln!(
                out,
                "**This section did not finish:** {}\n",
                escape(&short_error(e))
            );
        }
        for t in &self.tables {
            let _ = writeln!(out, "{}", t.to_markdown());
        }
        if !self.notes.is_empty() {
            for n in &self.notes {
                let _ = writeln!(out, "- {}", n.trim_end());
            }
            out.push('\n');
        }
        let _ = writeln!(out, "_Section time: {}._\n", fmt_duration(self.elapsed));
        out
    }
}

/// The whole report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub title: String,
    /// (label, value) lines of the header: kernel, CPU, mode, date.
    pub env: Vec<(String, String)>,
    pub sections: Vec<Section>,
    /// File name of the plot, linked from the report when set.
    pub svg_name: Option<String>,
}

impl Report {
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.title);
        for (k, v) in &self.env {
            let _ = writeln!(out, "- **{k}:** {v}");
        }
        out.push('\n');
        if let Some(svg) = &self.svg_name {
            let _ = writeln!(out, "Scale curves: [{svg}]({svg})\n");
        }
        for s in &self.sections {
            out.push_str(&s.to_markdown());
        }
        out
    }

    pub fn failed_sections(&self) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|s| s.error.is_some())
            .map(|s| s.title.as_str())
            .collect()
    }
}

/// `bench-YYYYMMDD-HHMM` for a local date and time.
pub fn file_stem(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> String {
    format!("bench-{year:04}{month:02}{day:02}-{hour:02}{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_as_markdown() {
        let mut t = Table::new(&["case", "ns/packet", "ratio"]).caption("Cost");
        t.row(["drop", "22.0", "1.00×"]);
        t.row(["a|b", "1"]);
        let md = t.to_markdown();
        assert_eq!(
            md,
            "Cost\n\n\
             | case | ns/packet | ratio |\n\
             |---|---:|---:|\n\
             | drop | 22.0 | 1.00× |\n\
             | a\\|b | 1 |  |\n"
        );
    }

    #[test]
    fn alignment_can_change() {
        let t = Table::new(&["a", "b"])
            .align(1, Align::Left)
            .align(9, Align::Right);
        assert!(t.to_markdown().contains("|---|---|\n"));
    }

    #[test]
    fn sections_and_report() {
        let mut s = Section::new("1. Program cost");
        s.intro = "Measured with BPF_PROG_TEST_RUN.".into();
        let mut t = Table::new(&["x", "y"]);
        t.row(["1", "2"]);
        s.tables.push(t);
        s.note("a note");
        s.elapsed = Duration::from_millis(1500);
        let mut failed = Section::new("2. Scale");
        failed.error = Some("no root | nothing".into());
        let skipped = Section {
            skipped: true,
            ..Section::new("3. Live")
        };
        let r = Report {
            title: "lvs-xdp benchmarks".into(),
            env: vec![("kernel".into(), "6.18".into())],
            sections: vec![s, failed, skipped],
            svg_name: Some("bench-x.svg".into()),
        };
        let md = r.to_markdown();
        assert!(md.starts_with("# lvs-xdp benchmarks\n\n- **kernel:** 6.18\n"));
        assert!(md.contains("[bench-x.svg](bench-x.svg)"));
        assert!(md.contains("## 1. Program cost\n\nMeasured with BPF_PROG_TEST_RUN.\n\n| x | y |"));
        assert!(md.contains("- a note\n"));
        assert!(md.contains("_Section time: 1.50 s._"));
        assert!(md.contains("**This section did not finish:** no root \\| nothing"));
        assert!(md.contains("## 3. Live\n\nNot run"));
        assert_eq!(r.failed_sections(), vec!["2. Scale"]);
    }

    #[test]
    fn errors_are_shortened() {
        assert_eq!(short_error("one line"), "one line");
        assert_eq!(
            short_error(
                "rejected: Invalid argument\nverifier log:\n0: r6 = r1\n\nprocessed 438 insns\n"
            ),
            "rejected: Invalid argument … processed 438 insns"
        );
        let long = "x".repeat(400);
        assert_eq!(short_error(&long).chars().count(), 301);
    }

    #[test]
    fn file_stems() {
        assert_eq!(file_stem(2026, 1, 5, 9, 7), "bench-20260105-0907");
    }
}
