//! What vrift prints for people: notes, warnings and progress bars on stderr.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::env_vars;

/// Whether informational lines are silenced (`VRIFT_QUIET`).
pub fn quiet() -> bool {
    std::env::var_os(env_vars::VRIFT_QUIET).is_some_and(|v| !v.is_empty() && v != "0")
}

/// An informational line on stderr.
pub fn note(msg: &str) {
    if !quiet() {
        eprintln!("vrift: {msg}");
    }
}

/// A warning on stderr; never silenced.
pub fn warn(msg: &str) {
    eprintln!("vrift: warning: {msg}");
}

/// Whether progress is drawn: stderr is a terminal that can redraw a line,
/// and informational output is not silenced. Piped or redirected output
/// gets none.
fn draws_progress() -> bool {
    !quiet()
        && std::io::stderr().is_terminal()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A progress bar over `len` files on stderr when it is a terminal, hidden
/// otherwise.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    progress_of(len, what, "files")
}

/// A progress bar over `len` `unit`s on stderr when it is a terminal,
/// hidden otherwise. No colour in it: nothing to strip for `NO_COLOR`.
pub fn progress_of(len: u64, what: &str, unit: &str) -> ProgressBar {
    if !draws_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>11} [{bar:30}] {pos}/{len} {msg} {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar.set_message(unit.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A spinner with `what` on stderr when it is a terminal, hidden otherwise:
/// for a long step whose size is not known beforehand.
pub fn spinner(what: &str) -> ProgressBar {
    if !draws_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{prefix:>11} {spinner} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A transfer's progress bar on stderr when it is a terminal, hidden
/// otherwise: bytes done of the total, and "N/M files" as the message.
pub fn transfer_progress(total_bytes: u64, what: &str) -> ProgressBar {
    if quiet() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Human-readable byte count (IEC units).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// "1 project", "2 projects".
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}
