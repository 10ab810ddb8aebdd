//! Starting a daemon: detached, in its own session, logging to
//! `.vrift/daemon.log`; the starter waits until it answers, starts again
//! one killed before it did, and reports the reason of one that failed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::project::Project;

/// Starts a detached daemon unless one answers, and waits until it does.
pub fn start(project: &Project) -> Result<()> {
    let socket = super::socket_path(project);
    // A runtime directory we must not use is said at once, not after a
    // daemon was started only to refuse it.
    super::check_runtime_dir(socket.parent().expect("socket paths have a parent"))?;
    if super::client::ping_socket(&socket).is_ok() {
        return Ok(());
    }
    let log_path = project.state_dir().join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    // Where this daemon's own lines start (the log is appended to).
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the vrift binary")?;
    // A starter run by a process that ignores SIGCHLD inherits that: the
    // kernel would reap the daemon that failed, and we could not see it
    // exit (try_wait: ECHILD) until the 30 s deadline. We are a process of
    // our own: take the default back.
    // SAFETY: setting a standard disposition; no handler runs.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // A daemon killed by a signal before it answered (`kill -9`, the OOM
    // killer) says nothing about the next one: started again, a few times.
    // One that exits with an error gave its reason: that is final.
    // (`Killed` also covers one that exited 0 without answering us.)
    let mut killed = 0;
    loop {
        match spawn_and_wait(project, &exe, &socket, &log_path, &log, log_start)? {
            Started::Answering => return Ok(()),
            Started::Killed(status) => {
                killed += 1;
                if killed >= START_TRIES {
                    bail!(
                        "the daemon of {} ended before answering, {killed} times (last: {status}); see {}",
                        project.root().display(),
                        log_path.display()
                    );
                }
            }
        }
    }
}

/// Starts of a daemon killed before it answered, before the starter gives up.
const START_TRIES: u32 = 5;

enum Started {
    Answering,
    Killed(std::process::ExitStatus),
}

fn spawn_and_wait(
    project: &Project,
    exe: &std::path::Path,
    socket: &std::path::Path,
    log_path: &std::path::Path,
    log: &std::fs::File,
    log_start: u64,
) -> Result<Started> {
    let log = log.try_clone()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("-C")
        .arg(project.root())
        .args(["daemon", "run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // The daemon must not die with the terminal or the build that started it.
    // SAFETY: setsid in the child before exec is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the daemon")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if super::client::ping_socket(socket).is_ok() {
            // Reaped by init once we exit; we do not wait for it.
            std::mem::forget(child);
            return Ok(Started::Answering);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have lost a start race to another daemon that answers now.
            if super::client::ping_socket(socket).is_ok() {
                return Ok(Started::Answering);
            }
            // Killed by a signal, or gone without an error: it found
            // another daemon answering (which has died since) or exited
            // idle before we asked. Neither says the next one will fail.
            if status.success() || std::os::unix::process::ExitStatusExt::signal(&status).is_some()
            {
                return Ok(Started::Killed(status));
            }
            let why = last_log_line(log_path, log_start)
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            bail!(
                "the daemon of {} exited ({status}) before answering{why} (see {})",
                project.root().display(),
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not answer on {} within 30 s; see {}",
                socket.display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last non-empty line written to the log at or after `from`.
fn last_log_line(log: &std::path::Path, from: u64) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    let new = bytes.get(from as usize..)?;
    let text = String::from_utf8_lossy(new);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    // The daemon's error line carries the CLI's prefix; the reason is enough.
    Some(line.trim_start_matches("vrift: error: ").trim().to_string())
}
