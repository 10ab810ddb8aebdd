//! `cargo xtask bench …`: the benches, and what they share — one report
//! type, printed the same way by every bench and saved as CSV.
//!
//! Every bench ends with a [`Report`]: rows of a name, a baseline figure,
//! the vrift figure, their ratio, a unit and a note (what the baseline is,
//! the target and whether it is met, further sides such as fakechroot).
//! With `--save DIR`, the report's raw results go to `DIR/BENCH.csv`, one
//! line per timed run (every run, not only the median or best the table
//! shows), after a header line. The columns:
//!
//! | column    | meaning |
//! |-----------|---------|
//! | `bench`   | the bench (`ingest`, `shim`, `build`, `unviewed`, `remote`) |
//! | `row`     | the row's name, as the table prints it (without its indent) |
//! | `side`    | `baseline`, `vrift`, or a further side (`fakechroot`, `empty preload`…) |
//! | `run`     | the run's number on that side, from 1 |
//! | `seconds` | the run's figure in seconds (per call, for the per-call rows) |
//!
//! A figure computed from runs (a per-call cost less an empty run's, a
//! build plus its drain) is saved as computed for each run.

pub mod build;
pub mod ingest;
pub mod remote;
pub mod shim;
pub mod unviewed;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::sandbox::Sandbox;

/// The options every bench has: where it works, whether the directory is
/// kept, and where the raw results go.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Create the bench directory below DIR (default: $TMPDIR or /tmp).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the bench directory afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Write every run's figure to DIR/BENCH.csv (columns: bench, row,
    /// side, run, seconds), creating DIR if needed.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
}

/// The generated node_modules-like tree of the ingest and remote benches.
#[derive(clap::Args, Debug)]
pub struct TreeArgs {
    /// Regular files to generate (symlinks come on top).
    #[arg(long, value_name = "N", default_value_t = 70_000)]
    pub files: usize,
    /// Total size of the generated files, in MB (10^6 bytes).
    #[arg(long, value_name = "M", default_value_t = 750)]
    pub size_mb: u64,
    /// Percentage of files that duplicate another file's content.
    #[arg(long, value_name = "P", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=90))]
    pub dup_percent: u32,
    /// Seed of the generator (the same seed gives the same tree).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl TreeArgs {
    pub fn spec(&self) -> crate::gen::TreeSpec {
        crate::gen::TreeSpec {
            files: self.files,
            bytes: self.size_mb * 1_000_000,
            dup_percent: self.dup_percent,
            seed: self.seed,
        }
    }
}

/// Runs `bench` in a fresh sandbox (prefix `vrift-bench-NAME-`), then
/// removes the sandbox unless `--keep`; prints and saves the report the
/// bench returns.
pub fn in_sandbox(
    name: &'static str,
    common: &CommonArgs,
    bench: impl FnOnce(&Sandbox) -> Result<Report>,
) -> Result<()> {
    let sandbox = Sandbox::create(common.dir.as_deref(), &format!("vrift-bench-{name}-"))?;
    println!("bench directory: {}", sandbox.path().display());
    let result = bench(&sandbox).and_then(|report| {
        report.print();
        match &common.save {
            Some(dir) => report.save(dir),
            None => Ok(()),
        }
    });
    if result.is_err() && !common.keep {
        eprintln!("xtask: rerun with --keep to inspect the bench directory");
    }
    println!("cleaning up…");
    let cleanup = sandbox.finish(common.keep);
    result?;
    cleanup
}

/// One side's figure: what the table shows (a median, a best, a single
/// run) and every run it comes from, in seconds.
#[derive(Clone, Debug)]
pub struct Figure {
    pub seconds: f64,
    pub runs: Vec<f64>,
}

impl Figure {
    /// A single run.
    pub fn once(d: Duration) -> Figure {
        Figure::from_runs(vec![d.as_secs_f64()], |r| r[0])
    }

    /// The median of the runs (the upper one of an even count).
    pub fn median(runs: &[Duration]) -> Figure {
        Figure::from_runs(runs.iter().map(Duration::as_secs_f64).collect(), |r| {
            r[r.len() / 2]
        })
    }

    /// The best (smallest) of the runs.
    pub fn best(runs: &[Duration]) -> Figure {
        Figure::from_runs(runs.iter().map(Duration::as_secs_f64).collect(), |r| r[0])
    }

    /// The best of runs given in seconds.
    pub fn best_secs(runs: Vec<f64>) -> Figure {
        Figure::from_runs(runs, |r| r[0])
    }

    /// `pick` chooses from the runs sorted (there is at least one).
    fn from_runs(runs: Vec<f64>, pick: impl Fn(&[f64]) -> f64) -> Figure {
        assert!(!runs.is_empty(), "a figure needs a run");
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        Figure {
            seconds: pick(&sorted),
            runs,
        }
    }

    /// The figure with every run (and the reported value) mapped by `f`.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Figure {
        Figure {
            seconds: f(self.seconds),
            runs: self.runs.iter().map(|&r| f(r)).collect(),
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.max(0.0))
    }
}

/// What a row's vrift figure is held to.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Report only.
    None,
    /// At most this long.
    AtMost(Duration),
    /// At most this multiple of the baseline.
    Ratio(f64),
    /// Strictly below the baseline.
    Faster,
}

/// One line of a report.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub baseline: Option<Figure>,
    pub vrift: Option<Figure>,
    /// What the baseline is, the target and whether it is met, other sides.
    pub note: String,
    /// Further sides measured for this row (saved; shown in the note).
    pub others: Vec<(String, Figure)>,
}

impl Row {
    /// A vrift figure beside a baseline.
    pub fn new(name: impl Into<String>, baseline: Figure, vrift: Figure) -> Row {
        Row {
            name: name.into(),
            baseline: Some(baseline),
            vrift: Some(vrift),
            note: String::new(),
            others: Vec::new(),
        }
    }

    /// A vrift figure with nothing to compare it with.
    pub fn vrift_only(name: impl Into<String>, vrift: Figure) -> Row {
        Row {
            baseline: None,
            ..Row::new(name, vrift.clone(), vrift)
        }
    }

    /// A baseline measured for other rows, shown on its own.
    pub fn baseline_only(name: impl Into<String>, baseline: Figure) -> Row {
        Row {
            vrift: None,
            ..Row::new(name, baseline.clone(), baseline)
        }
    }

    /// Adds `text` to the note.
    pub fn note(mut self, text: impl AsRef<str>) -> Row {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(text.as_ref());
        self
    }

    /// Notes the target and whether the vrift figure meets it.
    pub fn target(self, target: Target) -> Row {
        let (Some(v), base) = (&self.vrift, &self.baseline) else {
            return self;
        };
        let (v, base) = (v.seconds, base.as_ref().map(|b| b.seconds));
        let (shown, met) = match target {
            Target::None => return self,
            Target::AtMost(t) => (
                format!("≤ {}", human_secs(t.as_secs_f64())),
                Some(v <= t.as_secs_f64()),
            ),
            Target::Ratio(r) => (format!("≤ {r:.2}x"), base.map(|b| v <= r * b)),
            Target::Faster => ("< 1.00x".to_string(), base.map(|b| v < b)),
        };
        let met = match met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "no baseline",
        };
        self.note(format!("target {shown}: {met}"))
    }

    /// Adds a further side, noted with its figure.
    pub fn other(mut self, side: &str, figure: Figure) -> Row {
        self = self.note(format!("{side} {}", human_secs(figure.seconds)));
        self.others.push((side.to_string(), figure));
        self
    }

    /// vrift over baseline.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.vrift.as_ref()?.seconds / self.baseline.as_ref()?.seconds)
    }

    /// The unit both figures are shown in, by the larger one, and its size.
    fn unit(&self) -> (&'static str, f64) {
        let largest = [&self.baseline, &self.vrift]
            .iter()
            .filter_map(|f| f.as_ref().map(|f| f.seconds))
            .fold(0.0, f64::max);
        unit_of(largest)
    }
}

/// The unit a duration of `seconds` reads best in, and its size in seconds.
fn unit_of(seconds: f64) -> (&'static str, f64) {
    if seconds < 10e-6 {
        ("ns", 1e-9)
    } else if seconds < 10e-3 {
        ("µs", 1e-6)
    } else if seconds < 10.0 {
        ("ms", 1e-3)
    } else {
        ("s", 1.0)
    }
}

/// Seconds in the unit that reads best ("41.2 ns", "1.33 s").
pub fn human_secs(seconds: f64) -> String {
    if seconds < 1e-6 {
        format!("{:.1} ns", seconds * 1e9)
    } else {
        human(Duration::from_secs_f64(seconds))
    }
}

/// A bench's results: its rows, and lines printed under the table.
pub struct Report {
    bench: &'static str,
    rows: Vec<Row>,
    footnotes: Vec<String>,
}

impl Report {
    pub fn new(bench: &'static str) -> Report {
        Report {
            bench,
            rows: Vec::new(),
            footnotes: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn extend(&mut self, rows: impl IntoIterator<Item = Row>) {
        self.rows.extend(rows);
    }

    /// A line printed under the table.
    pub fn footnote(&mut self, line: impl Into<String>) {
        self.footnotes.push(line.into());
    }

    /// The table: name, baseline, vrift, ratio, unit, note.
    pub fn print(&self) {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let line = |cells: [&str; 6]| {
            let [name, baseline, vrift, ratio, unit, note] = cells;
            format!("{name:<width$}  {baseline:>10}  {vrift:>10}  {ratio:>7}  {unit:<4}  {note}")
                .trim_end()
                .to_string()
        };
        let header = line(["figure", "baseline", "vrift", "ratio", "unit", "note"]);
        println!(
            "\n{} results\n{header}\n{}",
            self.bench,
            "-".repeat(header.chars().count().max(72))
        );
        for r in &self.rows {
            let (unit, size) = r.unit();
            let shown = |f: &Option<Figure>| {
                f.as_ref()
                    .map_or("-".to_string(), |f| format!("{:.1}", f.seconds / size))
            };
            let ratio = r.ratio().map_or("-".to_string(), |x| format!("{x:.2}x"));
            println!(
                "{}",
                line([
                    &r.name,
                    &shown(&r.baseline),
                    &shown(&r.vrift),
                    &ratio,
                    unit,
                    &r.note
                ])
            );
        }
        for f in &self.footnotes {
            println!("{f}");
        }
    }

    /// Writes every run of every row to `dir/BENCH.csv`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.csv", self.bench));
        fs::write(&path, self.csv()).with_context(|| format!("cannot write {}", path.display()))?;
        println!("raw results: {}", path.display());
        Ok(())
    }

    fn csv(&self) -> String {
        let mut out = String::from("bench,row,side,run,seconds\n");
        for r in &self.rows {
            let sides = [("baseline", &r.baseline), ("vrift", &r.vrift)];
            let sides = sides
                .into_iter()
                .filter_map(|(side, f)| Some((side, f.as_ref()?)))
                .chain(r.others.iter().map(|(side, f)| (side.as_str(), f)));
            for (side, figure) in sides {
                for (i, secs) in figure.runs.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{secs:.6e}",
                        self.bench,
                        csv_field(r.name.trim()),
                        csv_field(side),
                        i + 1
                    );
                }
            }
        }
        out
    }
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The command line and what the figures depend on: cores, CPU, kernel.
pub fn print_machine() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("command: cargo xtask {}", args.join(" "));
    let nproc = Command::new("nproc").output().context("cannot run nproc")?;
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "nproc: {}  cpu: {cpu}  kernel: {kernel}",
        String::from_utf8_lossy(&nproc.stdout).trim()
    );
    Ok(())
}

pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Seconds, milliseconds or microseconds, whichever reads best.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_every_run_and_quotes_names() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let mut report = Report::new("t");
        report.push(
            Row::new(
                "a, b",
                Figure::median(&ms(&[3, 1, 2])),
                Figure::best(&ms(&[5, 4])),
            )
            .other("x", Figure::once(Duration::from_millis(7))),
        );
        assert_eq!(
            report.csv(),
            "bench,row,side,run,seconds\n\
             t,\"a, b\",baseline,1,3.000000e-3\nt,\"a, b\",baseline,2,1.000000e-3\n\
             t,\"a, b\",baseline,3,2.000000e-3\nt,\"a, b\",vrift,1,5.000000e-3\n\
             t,\"a, b\",vrift,2,4.000000e-3\nt,\"a, b\",x,1,7.000000e-3\n"
        );
        let row = &report.rows[0];
        assert_eq!(row.baseline.as_ref().unwrap().seconds, 2e-3);
        assert_eq!(row.vrift.as_ref().unwrap().seconds, 4e-3);
        assert_eq!(row.ratio(), Some(2.0));
    }
}
