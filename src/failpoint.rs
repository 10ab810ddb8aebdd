//! Crash points (docs/design.md, "Crash points"): with
//! `VRIFT_FAILPOINT=<step>` in its environment, a vrift process kills
//! itself with SIGKILL when it reaches `<step>`, so a test can crash an
//! ingest or a seal at each of its steps in turn instead of at a random
//! time. Unset, a step costs one atomic load.

use std::sync::OnceLock;

/// Every step, in the order an ingest or a seal reaches them.
pub const STEPS: &[&str] = &[
    // A batch hashed, nothing recorded yet.
    "ingest.hashed",
    // A batch's entries and journal row committed, nothing moved yet.
    "ingest.committed",
    // One file of a batch moved into the store (others may be too).
    "ingest.moved-one",
    // A batch's files all moved, its journal row still there.
    "ingest.moved",
    // The final commit about to drop the last journal rows.
    "ingest.final",
    // The whole staged file hashed under its lease, no blob yet.
    "seal.hashed",
    // The blob linked into the store, the record still staged.
    "seal.linked",
    // The sealed record journaled, not yet in the manifest.
    "seal.recorded",
    // A group commit written to the manifest, the journal not yet emptied.
    "commit.applied",
    // A mkdir's (rmdir's) request id journaled, the directory not yet made
    // (removed); tested on their own:
    // `faults::a_mkdir_or_rmdir_its_daemon_died_in_is_done_by_the_retry`.
    "mkdir.journaled",
    "rmdir.journaled",
];

/// Kills this process if `step` is the one `VRIFT_FAILPOINT` names.
pub fn hit(step: &'static str) {
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var(crate::env_vars::VRIFT_FAILPOINT).ok());
    if wanted.as_deref() == Some(step) && first_time() {
        debug_assert!(STEPS.contains(&step), "unlisted step {step}");
        // SAFETY: signalling our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// With `VRIFT_FAILPOINT_ONCE=<file>`, a step fires in the first process
/// that reaches it only (the one that creates the file): the daemon started
/// again for a retry then gets past it.
fn first_time() -> bool {
    match std::env::var_os(crate::env_vars::VRIFT_FAILPOINT_ONCE) {
        None => true,
        Some(path) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .is_ok(),
    }
}
