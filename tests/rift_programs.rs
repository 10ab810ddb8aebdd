//! Programs built in the rift that need shared libraries built in the rift:
//! the dynamic loader opens libraries with its own internal calls, which the
//! LD_PRELOAD library does not see, so vrift runs rift programs from a
//! physical mirror (`.vrift/exec/REL`) with its audit hook (`LD_AUDIT`)
//! redirecting every library search into the view. Each case runs the same
//! commands natively in a physical twin and compares what the user sees.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

const INNER_C: &str = "int inner(void) { return 7; }\n";
const GREET_C: &str = "int inner(void);\nint greet(void) { return 100 + inner(); }\n";
const APP_C: &str = r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
int greet(void);
int main(void) {
    char b[4096];
    ssize_t n = readlink("/proc/self/exe", b, sizeof b - 1);
    b[n > 0 ? n : 0] = 0;
    const char *base = strrchr(b, '/');
    printf("greet=%d exe=%s\n", greet(), base ? base + 1 : b);
    return 0;
}
"#;
/// dlopen of a library that itself needs another (through its $ORIGIN).
const PLUGIN_HOST_C: &str = r#"#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen failed\n"); return 1; }
    int (*g)(void) = (int (*)(void))dlsym(h, "greet");
    printf("plugin greet=%d\n", g());
    return 0;
}
"#;

/// A rift program that runs a program from disk.
const RUN_ENV_C: &str =
    "#include <unistd.h>\nint main(void) { execlp(\"env\", \"env\", (char *)0); return 127; }\n";

/// Builds the libraries and programs (the same script in the view and natively).
const BUILD_SH: &str = r#"set -e
mkdir -p out/lib out/bin
cc -shared -fPIC -o out/lib/libinner.so src/inner.c
cc -shared -fPIC -o out/lib/libgreet.so src/greet.c -Lout/lib -linner -Wl,-rpath,'$ORIGIN'
cc -o out/bin/app src/app.c -Lout/lib -lgreet -Wl,-rpath,'$ORIGIN/../lib' -Wl,-rpath-link,out/lib
cc -o out/bin/app-nopath src/app.c -Lout/lib -lgreet -Wl,-rpath-link,out/lib
cc -o out/bin/host src/host.c -ldl
cc -o out/bin/run-env src/run-env.c
"#;

/// What is run and compared: RUNPATH with $ORIGIN, LD_LIBRARY_PATH
/// (absolute and relative), a transitive dependency, dlopen by path.
const RUN_SH: &str = r#"./out/bin/app
LD_LIBRARY_PATH=$PWD/out/lib ./out/bin/app-nopath
LD_LIBRARY_PATH=out/lib ./out/bin/app-nopath
./out/bin/host "$PWD/out/lib/libgreet.so"
"#;

fn seed(dir: &Path) {
    for (rel, text) in [
        ("src/inner.c", INNER_C),
        ("src/greet.c", GREET_C),
        ("src/app.c", APP_C),
        ("src/host.c", PLUGIN_HOST_C),
        ("src/run-env.c", RUN_ENV_C),
        ("build.sh", BUILD_SH),
        ("run.sh", RUN_SH),
    ] {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

fn native(dir: &Path, script: &str) -> (String, String, bool) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn in_view(sb: &Sandbox, dir: &Path, store: &Path, script: &str) -> (String, String, bool) {
    let out = sb
        .cmd(dir, &["run", "--", "sh", "-c", script])
        .env("VR_THE_SOURCE", store)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// The whole scenario with the store at `store`.
fn shared_libraries_scenario(sb: &Sandbox, store: &Path) {
    build_shim();
    let (root, twin) = project_and_twin_with(sb, seed);
    let disk_before = disk_files(&root);
    let init = sb
        .cmd(&root, &["init"])
        .env("VR_THE_SOURCE", store)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let built = in_view(sb, &root, store, "sh build.sh");
    assert!(built.2, "build in the view: {}", built.1);
    assert!(native(&twin, "sh build.sh").2);

    let expected = native(&twin, "sh run.sh");
    assert!(expected.2, "native run: {}", expected.1);
    assert_eq!(
        expected.0,
        "greet=107 exe=app\ngreet=107 exe=app-nopath\ngreet=107 exe=app-nopath\nplugin greet=107\n"
    );
    let got = in_view(sb, &root, store, "sh run.sh");
    assert_eq!(got, expected, "rift programs with rift libraries");

    // /proc/self/exe is the view path, not the mirror or the store.
    let full = in_view(
        sb,
        &root,
        store,
        r#"cat > /tmp/.vrift-exe-$$.c <<'EOF'
#include <stdio.h>
#include <unistd.h>
int main(void) { char b[4096]; ssize_t n = readlink("/proc/self/exe", b, sizeof b - 1); b[n > 0 ? n : 0] = 0; puts(b); return 0; }
EOF
cc -o out/bin/whoami /tmp/.vrift-exe-$$.c && rm -f /tmp/.vrift-exe-$$.c && ./out/bin/whoami"#,
    );
    assert!(full.2, "{}", full.1);
    assert_eq!(full.0.trim(), root.join("out/bin/whoami").to_str().unwrap());

    // A library rebuilt in the view is what the next run loads.
    let rebuild = "printf 'int inner(void) { return 9; }\\n' > src/inner.c && \
                   cc -shared -fPIC -o out/lib/libinner.so src/inner.c && ./out/bin/app";
    let expected = native(&twin, rebuild);
    assert_eq!(expected.0, "greet=109 exe=app\n");
    assert_eq!(in_view(sb, &root, store, rebuild), expected);

    // A library deleted in the view is gone for the loader too (never served
    // from a stale mirror): the loader's own error, as natively.
    let gone = "rm out/lib/libinner.so && ./out/bin/app";
    let expected = native(&twin, gone);
    assert!(!expected.2);
    assert!(
        expected
            .1
            .contains("libinner.so: cannot open shared object file"),
        "{}",
        expected.1
    );
    assert_eq!(in_view(sb, &root, store, gone), expected);

    // Programs not from the rift do not get the audit hook, even when a rift
    // program starts them.
    for cmd in ["env", "./out/bin/run-env"] {
        let env = in_view(sb, &root, store, cmd);
        assert!(env.2, "{cmd}: {}", env.1);
        assert!(env.0.contains("VRIFT_PROJECT_ROOT="), "{cmd}: {}", env.0);
        assert!(!env.0.contains("LD_AUDIT"), "{cmd}: {}", env.0);
    }

    // Nothing of this reached the project's disk.
    assert_eq!(disk_files(&root), disk_before);
}

#[test]
fn rift_programs_load_rift_shared_libraries() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    let sb = Sandbox::new();
    let store = sb.store();
    shared_libraries_scenario(&sb, &store);
}

/// With the store on another filesystem, the mirror holds copies (no hard
/// links across filesystems), refreshed by content.
#[test]
fn rift_programs_load_rift_shared_libraries_with_the_store_elsewhere() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    let sb = Sandbox::new();
    let shm = Path::new("/dev/shm");
    let same_fs = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(a).unwrap().dev() == fs::metadata(b).unwrap().dev()
    };
    if !shm.is_dir() || same_fs(shm, &sb.path()) {
        eprintln!("skipped: /dev/shm is missing or on the sandbox's filesystem");
        return;
    }
    let store = tempfile::Builder::new()
        .prefix("vrift-store-")
        .tempdir_in(shm)
        .unwrap();
    shared_libraries_scenario(&sb, store.path());
}
