//! The exports of `shim/exports.txt` that no other test calls, or whose body
//! is their own rather than a sibling's: `tests/c/exports_calls.c` calls each
//! on files it made (rift entries in the view), natively in a twin directory
//! and under `vrift run` in a project, and the lines must match. The
//! dynamic loader's own record (`LD_DEBUG=bindings`, the probe bound
//! lazily) proves that each row naming this test was called, and called
//! in the shim.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::*;

const TEST: &str = "exports::the_probe_calls_its_rows_in_the_view_as_on_disk";

#[test]
fn the_probe_calls_its_rows_in_the_view_as_on_disk() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    // Lazy binding: the loader binds (and with LD_DEBUG=bindings reports) a
    // function at its first call, not at load.
    let prog = compile_c(
        &sb,
        "exports_calls",
        &["-Wl,-z,lazy", "-Wno-deprecated-declarations"],
    );
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    sb.ok(&root, &["init"]);
    let out = same_probe_output(&sb, &prog, &root, &twin);
    for line in [
        "statx size 4 mode 100644",
        "dup2 size 4",
        "closed size -1",
        "reused size 5",
        "futimes mtime 1100000000",
        "scandirat e",
        "execvp ran",
        "fexecve ran",
        "posix_spawnp ran",
        "dlmopen cos found",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in\n{out}");
    }

    // Again in a fresh project, with the loader reporting its bindings.
    let again = sb.mkdir("again");
    sb.ok(&again, &["init"]);
    let view = sb
        .cmd(&again, &["run", "--", prog.to_str().unwrap()])
        .env("LD_DEBUG", "bindings")
        .output()
        .unwrap();
    assert!(view.status.success(), "{}", text(&view.stderr));
    let bound = bound_to_the_shim(&text(&view.stderr), &prog);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = fs::read_to_string(manifest.join("shim/exports.txt")).unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(TEST))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(rows.len() >= 25, "{rows:?}");
    let missing: Vec<&&str> = rows.iter().filter(|s| !bound.contains(**s)).collect();
    assert!(
        missing.is_empty(),
        "rows of {TEST} the probe never called in the shim: {missing:?}\nbound: {bound:?}"
    );
}

/// The symbols the loader bound from `prog` to the shim (the store's
/// `libvrift_shim-HASH.so`), from `LD_DEBUG=bindings` lines such as
/// "binding file /x/prog [0] to /y/libvrift_shim-….so [0]: normal symbol `stat' [GLIBC_2.33]".
fn bound_to_the_shim(log: &str, prog: &Path) -> BTreeSet<String> {
    let from = format!("binding file {} [0] to ", prog.display());
    // Not line by line: a parent's and a child's records can interleave.
    log.match_indices(&from)
        .map(|(at, _)| &log[at + from.len()..])
        .filter(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|lib| lib.rsplit('/').next())
                .is_some_and(|lib| lib.starts_with("libvrift_shim") && lib.ends_with(".so"))
        })
        .filter_map(|rest| {
            let sym = rest.split_once('`')?.1;
            Some(sym.split_once('\'')?.0.to_string())
        })
        .collect()
}
