//! The CLI surface: help, version, completions, init, trust, multicall.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

#[test]
fn every_command_has_help_and_version_works() {
    let sb = Sandbox::new();
    let cwd = sb.path();
    let out = sb.ok(&cwd, &["--version"]);
    assert!(out.starts_with("vrift "), "{out}");
    let help = sb.ok(&cwd, &["--help"]);
    for cmd in [
        "init",
        "ingest",
        "materialize",
        "status",
        "ls",
        "cat",
        "snapshot",
        "discard",
        "diff",
        "gc",
        "fsck",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
        let sub = sb.ok(&cwd, &[cmd, "--help"]);
        assert!(sub.contains("Usage: vrift"), "{cmd}: {sub}");
    }
    for sub in ["save", "list", "restore", "drop"] {
        sb.ok(&cwd, &["snapshot", sub, "--help"]);
    }
    let err = sb.fails(&cwd, &["no-such-command"]);
    assert!(err.contains("unrecognized subcommand"), "{err}");
}

#[test]
fn completions_are_generated_for_each_shell() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.ok(&sb.path(), &["completions", shell]);
        assert!(out.contains("snapshot"), "{shell}");
    }
    // The bash script is valid bash.
    let script = sb.path().join("vrift.bash");
    fs::write(&script, sb.ok(&sb.path(), &["completions", "bash"])).unwrap();
    let st = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn init_creates_the_skeleton_and_is_idempotent_and_repairs() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::create_dir_all(root.join("node_modules/x")).unwrap();
    fs::create_dir_all(root.join("web/node_modules")).unwrap();
    fs::create_dir_all(root.join("target")).unwrap();
    fs::write(root.join("Cargo.toml"), "[package]\n").unwrap();
    fs::create_dir_all(root.join("vendor/bundle")).unwrap();
    let out = sb.ok(&root, &["init"]);
    assert!(out.starts_with("initialised vrift project"), "{out}");
    let config = fs::read_to_string(root.join(".vrift/config.toml")).unwrap();
    assert!(
        config
            .contains(r#"paths = ["node_modules", "target", "vendor/bundle", "web/node_modules"]"#),
        "{config}"
    );
    assert_eq!(
        fs::read_to_string(root.join(".vrift/.gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );
    assert!(root.join(".vrift/manifest.redb").is_file());

    // git ignores .vrift/ through its own .gitignore.
    if Command::new("git").arg("--version").output().is_ok() {
        Command::new("git")
            .arg("init")
            .arg("-q")
            .arg(&root)
            .status()
            .unwrap();
        let st = Command::new("git")
            .args(["check-ignore", "-q", ".vrift/manifest.redb"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), ".vrift/ is ignored by git");
    } else {
        skip("git is not installed");
    }

    // The user's edits survive a re-run; damage is repaired.
    let edited = config.replace("paths = [", "paths = [\"extra\", ");
    fs::write(root.join(".vrift/config.toml"), &edited).unwrap();
    fs::remove_file(root.join(".vrift/.gitignore")).unwrap();
    let out = sb.ok(&root, &["init"]);
    assert!(out.starts_with("repaired vrift project"), "{out}");
    assert_eq!(
        fs::read_to_string(root.join(".vrift/config.toml")).unwrap(),
        edited
    );
    assert!(root.join(".vrift/.gitignore").is_file());

    // From a subdirectory, commands find the project.
    let status = sb.ok(&root.join("node_modules/x"), &["status"]);
    assert!(
        status.contains(&format!("project    {}", root.display())),
        "{status}"
    );
}

#[test]
fn init_rejects_a_broken_config_with_its_name() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    fs::write(root.join(".vrift/config.toml"), "[phantom\npaths = 3").unwrap();
    let err = sb.fails(&root, &["init"]);
    assert!(
        err.contains("invalid config") && err.contains(".vrift/config.toml"),
        "{err}"
    );
}

#[test]
fn init_records_trust_and_a_changed_config_revokes_it() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    assert!(sb.ok(&root, &["status"]).contains("trust      trusted"));
    let mut config = fs::read_to_string(root.join(".vrift/config.toml")).unwrap();
    config.push_str("\n# changed\n");
    fs::write(root.join(".vrift/config.toml"), config).unwrap();
    assert!(sb
        .ok(&root, &["status"])
        .contains("config changed since trusted"));
    sb.ok(&root, &["allow"]);
    assert!(sb.ok(&root, &["status"]).contains("trust      trusted"));
    sb.ok(&root, &["deny"]);
    assert!(sb.ok(&root, &["status"]).contains("not trusted"));

    // A cloned project carrying .vrift/ is not trusted on this machine.
    let clone = sb.mkdir("clone");
    cp_a(&root.join(".vrift"), &clone.join(".vrift"));
    assert!(sb.ok(&clone, &["status"]).contains("not trusted"));
}

#[test]
fn the_store_location_follows_vr_the_source_then_the_project_record() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    // Without VR_THE_SOURCE, the project keeps using the store it was initialised with.
    let out = sb
        .cmd(&root, &["status", "--json"])
        .env_remove("VR_THE_SOURCE")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["store"]["path"], sb.store().display().to_string());
    // With nothing recorded, the XDG data dir under HOME.
    let other = sb.mkdir("q");
    let out = sb
        .cmd(&other, &["init"])
        .env_remove("VR_THE_SOURCE")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
        "store: {}",
        sb.home().join(".local/share/vrift/cas").display()
    )));
}

#[test]
fn invoked_as_an_applet_it_acts_itself_and_hands_the_rest_to_the_real_tool() {
    let sb = Sandbox::new();
    let bin = sb.mkdir("bin");
    let link = bin.join("cat");
    std::os::unix::fs::symlink(VRIFT, &link).unwrap();
    let f = sb.path().join("f");
    fs::write(&f, b"through the applet\n").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new(&link)
        .arg(&f)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"through the applet\n");
    // The applet needs no real tool for what it implements…
    let out = Command::new(&link)
        .arg(&f)
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"through the applet\n");
    assert_eq!(out.status.code(), Some(0));
    // …and hands the rest to the real one past itself, saying so.
    let out = Command::new(&link)
        .args(["-n".as_ref(), f.as_os_str()])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "     1\tthrough the applet\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("running /"));
    let out = Command::new(&link)
        .args(["-n".as_ref(), f.as_os_str()])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no other cat is on PATH"));
    let _ = fs::Permissions::from_mode(0o755);
}

/// On a terminal, help is styled (bold, underline) unless `NO_COLOR` is set
/// (https://no-color.org); vrift's own output and progress bars carry no
/// colour at all. Driven through `script`, which gives vrift a pty.
#[test]
fn no_color_is_honoured_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "script (util-linux) is not installed, and CI is set"
        );
        skip("script (util-linux) is not installed");
        return;
    }
    let help = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &format!("'{VRIFT}' --help"), "/dev/null"])
            .env("TERM", "xterm-256color")
            .env_remove("CLICOLOR_FORCE");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(help(false).contains("\x1b["), "no styling on a terminal");
    let plain = help(true);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(plain.contains("Usage: vrift"), "{plain}");
}
