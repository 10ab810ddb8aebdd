//! The shell hooks in real bash, zsh and fish, driven in a pty by tmux:
//! entering a trusted project on `cd`, staying in it in subdirectories,
//! switching projects, refusing untrusted ones, and leaving the environment
//! exactly as it was.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tmux::{installed, wait_file, Tmux};
use common::{build_shim, Sandbox, VRIFT};

const MARKER: &str = "(vrift 🌀)";

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn without(mut env: BTreeMap<String, String>, names: &[&str]) -> BTreeMap<String, String> {
    for n in names {
        env.remove(*n);
    }
    env
}

#[derive(Clone, Copy, PartialEq)]
enum Sh {
    Bash,
    Zsh,
    Fish,
}

struct Session {
    t: Tmux,
    sh: Sh,
    dir: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Session {
    /// Runs `line` and waits until its prompt is back; returns a file name stem.
    fn run(&self, line: &str) {
        let n = self.n.get() + 1;
        self.n.set(n);
        let done = self.dir.join(format!("done-{n}"));
        self.t
            .send(&format!("{line}; echo ok > {}", done.display()));
        wait_file(&self.t, &done);
        self.wait_prompt();
    }

    fn wait_prompt(&self) {
        self.t
            .wait_for("the prompt", |t| t.last_line().ends_with("PROMPT>"));
    }

    /// `env | sort` (without OLDPWD and `_`), after the hook ran.
    fn env(&self) -> BTreeMap<String, String> {
        let n = self.n.get() + 1;
        self.n.set(n);
        let f = self.dir.join(format!("env-{n}"));
        self.t.send(&format!(
            "env | grep -v -e '^OLDPWD=' -e '^_=' | sort > {0}.tmp; mv {0}.tmp {0}",
            f.display()
        ));
        let text = wait_file(&self.t, &f);
        self.wait_prompt();
        parse_env(&text)
    }

    fn prompt_marked(&self) -> bool {
        self.t.last_line().starts_with(MARKER)
    }

    /// Sends `line` (whose status is 1) on its own, then, at the next
    /// prompt, writes `$?` to `file`: the hook ran in between.
    fn status_after(&self, line: &str, file: &Path) {
        let _ = fs::remove_file(file);
        self.t.send(line);
        let tmp = file.with_extension("tmp");
        self.t.send(&format!(
            "echo status={} > {}; mv {} {}",
            self.status_var(),
            q(&tmp),
            q(&tmp),
            q(file)
        ));
        assert_eq!(wait_file(&self.t, file).trim(), "status=1");
        self.wait_prompt();
    }

    fn status_var(&self) -> &'static str {
        if self.sh == Sh::Fish {
            "$status"
        } else {
            "$?"
        }
    }
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn shell_test(sh: Sh) {
    let name = match sh {
        Sh::Bash => "bash",
        Sh::Zsh => "zsh",
        Sh::Fish => "fish",
    };
    if !installed("tmux") {
        common::skip("tmux is not installed");
        return;
    }
    if !installed(name) {
        common::skip(&format!("{name} is not installed"));
        return;
    }
    let built = build_shim();
    let sb = Sandbox::new();
    // Inceptions preload the library's copy in the store, named by content.
    let hash = blake3::hash(&fs::read(&built).unwrap()).to_hex();
    let shim = sb
        .store()
        .join(format!("lib/libvrift_shim-{}.so", &hash[..32]));
    let outside = sb.mkdir("outside");
    let p1 = sb.mkdir("p1");
    let p2 = sb.mkdir("p2");
    fs::create_dir_all(p1.join("src/deep")).unwrap();
    sb.ok(&p1, &["init"]);
    sb.ok(&p2, &["init"]);
    // An untrusted project: a copy of a trusted one's .vrift elsewhere.
    let untrusted = sb.mkdir("untrusted");
    common::cp_a(&p1.join(".vrift"), &untrusted);
    let denied = sb.mkdir("denied");
    sb.ok(&denied, &["init"]);
    sb.ok(&denied, &["deny"]);
    let state = sb.mkdir("state");

    let vrift_q = q(Path::new(VRIFT));
    let home = sb.home();
    let mut env = vec![
        ("HOME", home.display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("TERM", "xterm-256color".to_string()),
        ("LANG", "C.UTF-8".to_string()),
        ("VR_THE_SOURCE", sb.store().display().to_string()),
        ("SHELL", format!("/bin/{name}")),
    ];
    let cmdline: Vec<String> = match sh {
        Sh::Bash => {
            let rc = sb.path().join("bashrc");
            fs::write(
                &rc,
                format!("PS1='PROMPT> '\nset -u\neval \"$({vrift_q} hook bash)\"\n"),
            )
            .unwrap();
            vec![
                "bash".into(),
                "--noprofile".into(),
                "--rcfile".into(),
                rc.display().to_string(),
                "-i".into(),
            ]
        }
        Sh::Zsh => {
            let zdot = sb.mkdir("zdot");
            fs::write(
                zdot.join(".zshrc"),
                format!("PS1='PROMPT> '\nset -u\neval \"$({vrift_q} hook zsh)\"\n"),
            )
            .unwrap();
            env.push(("ZDOTDIR", zdot.display().to_string()));
            vec!["zsh".into(), "-i".into()]
        }
        Sh::Fish => {
            let rc = sb.path().join("rc.fish");
            fs::write(
                &rc,
                format!(
                    "set -g fish_greeting\nfunction fish_prompt\n    printf 'PROMPT> '\nend\n{vrift_q} hook fish | source\n"
                ),
            )
            .unwrap();
            vec![
                "fish".into(),
                "--no-config".into(),
                "-i".into(),
                "-C".into(),
                format!("source {}", q(&rc)),
            ]
        }
    };
    let s = Session {
        t: Tmux::start(&sb, &outside, &env, &cmdline),
        sh,
        dir: state,
        n: std::cell::Cell::new(0),
    };
    s.wait_prompt();

    let before = s.env();
    assert!(!before.contains_key("VRIFT_INCEPTION"), "{before:?}");
    assert!(!s.prompt_marked());

    // Entering a trusted project.
    s.run(&format!("cd {}", q(&p1)));
    let in1 = s.env();
    assert_eq!(in1.get("VRIFT_INCEPTION").map(String::as_str), Some("1"));
    assert_eq!(in1["VRIFT_PROJECT_ROOT"], p1.display().to_string());
    assert!(
        in1["LD_PRELOAD"].starts_with(&shim.display().to_string()),
        "{}",
        in1["LD_PRELOAD"]
    );
    let bin1 = format!("{}/.vrift/bin:", p1.display());
    assert!(in1["PATH"].starts_with(&bin1), "{}", in1["PATH"]);
    assert_eq!(&in1["PATH"][bin1.len()..], before["PATH"]);
    assert!(s.prompt_marked(), "no marker: {}", s.t.screen());

    // A subdirectory: nothing changes.
    s.run("cd src/deep");
    let deep = s.env();
    assert_eq!(without(deep, &["PWD"]), without(in1.clone(), &["PWD"]));
    assert!(s.prompt_marked());

    // Another project: switches, nothing of the first is left.
    s.run(&format!("cd {}", q(&p2)));
    let in2 = s.env();
    assert_eq!(in2["VRIFT_PROJECT_ROOT"], p2.display().to_string());
    assert_eq!(
        in2["PATH"],
        format!("{}/.vrift/bin:{}", p2.display(), before["PATH"])
    );
    assert_eq!(in2["LD_PRELOAD"], shim.display().to_string());
    assert!(s.prompt_marked());

    // Leaving: the environment is exactly as before.
    s.run(&format!("cd {}", q(&outside)));
    assert_eq!(s.env(), before);
    assert!(!s.prompt_marked(), "{}", s.t.screen());

    // Untrusted projects are not entered; the hook says why on entering,
    // once per visit (not at every prompt, not in subdirectories).
    let not_trusted = |dir: &Path| {
        format!(
            "vrift: {} is not trusted; run `vrift allow` in it to enter its rift",
            dir.display()
        )
    };
    let said = |msg: &str| s.t.history().matches(msg).count();
    fs::create_dir_all(untrusted.join("sub")).unwrap();
    for dir in [&denied, &untrusted] {
        s.run(&format!("cd {}", q(dir)));
        let e = s.env();
        assert_eq!(e["VRIFT_BLOCKED"], dir.display().to_string());
        assert_eq!(
            without(e, &["PWD", "VRIFT_BLOCKED"]),
            without(before.clone(), &["PWD"])
        );
        assert!(!s.prompt_marked());
        assert_eq!(said(&not_trusted(dir)), 1, "{}", s.t.screen());
    }
    s.run(&format!("cd {}", q(&untrusted.join("sub"))));
    s.run("true");
    assert_eq!(said(&not_trusted(&untrusted)), 1, "{}", s.t.screen());
    s.run(&format!("cd {}", q(&outside)));
    assert_eq!(s.env(), before, "VRIFT_BLOCKED is dropped on leaving");
    s.run(&format!("cd {}", q(&untrusted)));
    assert_eq!(said(&not_trusted(&untrusted)), 2, "{}", s.t.screen());
    s.run(&format!("cd {}", q(&outside)));

    // A trusted project whose config changed is blocked with what to run;
    // `vrift allow` there enters it at the next prompt.
    let config = p2.join(".vrift/config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str("\n# edited\n");
    fs::write(&config, text).unwrap();
    s.run(&format!("cd {}", q(&p2)));
    assert!(!s.prompt_marked());
    let changed = format!(
        "vrift: {} is not trusted: its .vrift/config.toml changed since it was allowed; review it, then run `vrift allow` to enter its rift",
        p2.display()
    );
    assert_eq!(said(&changed), 1, "{}", s.t.screen());
    s.run(&format!("{vrift_q} allow"));
    let e = s.env();
    assert_eq!(e["VRIFT_PROJECT_ROOT"], p2.display().to_string());
    assert!(!e.contains_key("VRIFT_BLOCKED"), "{e:?}");
    assert!(s.prompt_marked());
    s.run(&format!("cd {}", q(&outside)));
    assert_eq!(s.env(), before);

    // `$?` survives the hook, also when it enters a project.
    let st = s.dir.join("status");
    s.status_after(&format!("cd {}; false", q(&p1)), &st);
    assert!(s.prompt_marked());
    s.status_after("false", &st);
    s.run(&format!("cd {}", q(&outside)));
    assert_eq!(s.env(), before);

    // A vrift error: one line, the prompt keeps working, nothing entered.
    let set_bad = if sh == Sh::Fish {
        "set -gx VRIFT_SHIM_PATH /nonexistent/libvrift_shim.so"
    } else {
        "export VRIFT_SHIM_PATH=/nonexistent/libvrift_shim.so"
    };
    s.run(set_bad);
    s.run(&format!("cd {}", q(&p1)));
    assert!(s.t.screen().contains("vrift: hook:"), "{}", s.t.screen());
    let e = s.env();
    assert!(!e.contains_key("VRIFT_INCEPTION"), "{e:?}");
    assert!(!s.prompt_marked());
    s.run(&format!("cd {}", q(&outside)));
    s.run(if sh == Sh::Fish {
        "set -e VRIFT_SHIM_PATH"
    } else {
        "unset VRIFT_SHIM_PATH"
    });
    assert_eq!(s.env(), before);

    // set -e in bash and zsh: the hook does not end the shell.
    if sh != Sh::Fish {
        s.run("set -e");
        let st = s.dir.join("status-e");
        s.status_after("! true", &st);
        s.status_after(&format!("cd {}; ! true", q(&p1)), &st);
        assert!(s.prompt_marked());
        s.run(&format!("cd {}", q(&p2)));
        assert_eq!(s.env()["VRIFT_PROJECT_ROOT"], p2.display().to_string());
        s.run(&format!("cd {}", q(&outside)));
        assert_eq!(s.env(), before);
    }
}

#[test]
fn bash_hook() {
    shell_test(Sh::Bash);
}

#[test]
fn zsh_hook() {
    shell_test(Sh::Zsh);
}

#[test]
fn fish_hook() {
    shell_test(Sh::Fish);
}

/// `eval "$(vrift inception)"` then `eval "$(vrift wake)"` in bash restores
/// every variable exactly, including awkward values and empty or unset ones.
#[test]
fn inception_then_wake_restores_exactly() {
    build_shim();
    let sb = Sandbox::new();
    let p = sb.mkdir("p");
    sb.ok(&p, &["init"]);
    let script = format!(
        r#"set -eu
export LD_PRELOAD=''
unset VRIFT_MANIFEST
export PATH="/usr/bin:/bin:/we ird/'q'\$x"
PS1='orig> '
env | sort > before
printf '%s\n' "$PS1" > ps1.before
eval "$({v} inception --shell bash)"
[ "$VRIFT_INCEPTION" = 1 ]
case "$PATH" in "$PWD/.vrift/bin:/usr/bin:/bin:/we ird/'q'\$x") ;; *) echo "bad PATH $PATH"; exit 3 ;; esac
case "$PS1" in "(vrift 🌀) orig> ") ;; *) echo "bad PS1 $PS1"; exit 3 ;; esac
eval "$({v} inception --shell bash)"
eval "$({v} wake --shell bash)"
env | sort > after
printf '%s\n' "$PS1" > ps1.after
"#,
        v = q(Path::new(VRIFT))
    );
    let mut c = Command::new("bash");
    c.args(["-c", &script]).current_dir(&p);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("VRIFT_") || k.starts_with("XDG_") {
            c.env_remove(&k);
        }
    }
    c.env("HOME", sb.home()).env("VR_THE_SOURCE", sb.store());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("🌀 entering the rift of"));
    assert_eq!(
        fs::read_to_string(p.join("before")).unwrap(),
        fs::read_to_string(p.join("after")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(p.join("ps1.before")).unwrap(),
        fs::read_to_string(p.join("ps1.after")).unwrap()
    );
}

#[test]
fn inception_refuses_untrusted_and_hook_env_is_silent_inside() {
    build_shim();
    let sb = Sandbox::new();
    let p = sb.mkdir("p");
    sb.ok(&p, &["init"]);
    sb.ok(&p, &["deny"]);
    let out = sb.run(&p, &["inception", "--shell", "bash"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("vrift allow"), "{err}");

    sb.ok(&p, &["allow"]);
    let sub = p.join("a/b");
    fs::create_dir_all(&sub).unwrap();
    let out = sb
        .cmd(&sub, &["__hook-env", "--shell", "zsh"])
        .env("VRIFT_PROJECT_ROOT", &p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // Entering prints code; quiet config silences the line.
    let out = sb
        .cmd(&sub, &["__hook-env", "--shell", "fish"])
        .env("VRIFT_QUIET", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("set -gx VRIFT_INCEPTION '1'"));
    assert!(out.stderr.is_empty());
}
