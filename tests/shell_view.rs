//! The shell of an inception is in the view itself: after the hook enters a
//! project, the shell's own redirections, `test`, globs, `./prog` and
//! `source` see the rift and write into it, never onto the project's disk;
//! after leaving, the same shell sees the disk again. Real bash, zsh and
//! fish, each in a terminal (tmux), started the way a user's rc file does.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::tmux::{installed, Tmux};
use common::*;

fn shell_in_view(name: &str) {
    for tool in ["tmux", name, "cc"] {
        if !installed(tool) {
            skip(&format!("{tool} is not installed"));
            return;
        }
    }
    build_shim();
    let sb = Sandbox::new();
    let p = sb.mkdir("p");
    fs::write(p.join("old.txt"), "disk\n").unwrap();
    sb.ok(&p, &["init"]);
    let out = sb.path().join("out.txt");
    let o = out.display().to_string();
    let vrift = VRIFT;
    let (status, rc_lines, argv): (&str, String, Vec<String>) = match name {
        "bash" => {
            let rc = sb.path().join("bashrc");
            fs::write(
                &rc,
                format!("PS1='P> '\nset -u\neval \"$('{vrift}' hook bash)\"\n"),
            )
            .unwrap();
            (
                "$?",
                String::new(),
                vec![
                    "bash".into(),
                    "--noprofile".into(),
                    "--rcfile".into(),
                    rc.display().to_string(),
                    "-i".into(),
                ],
            )
        }
        "zsh" => {
            let zdot = sb.mkdir("zdot");
            fs::write(
                zdot.join(".zshrc"),
                format!("PS1='P> '\nset -u\neval \"$('{vrift}' hook zsh)\"\n"),
            )
            .unwrap();
            (
                "$?",
                zdot.display().to_string(),
                vec!["zsh".into(), "-i".into()],
            )
        }
        _ => {
            let rc = sb.path().join("rc.fish");
            fs::write(
                &rc,
                format!("set -g fish_greeting\nfunction fish_prompt\n    printf 'P> '\nend\n'{vrift}' hook fish | source\n"),
            )
            .unwrap();
            (
                "$status",
                String::new(),
                vec![
                    "fish".into(),
                    "--no-config".into(),
                    "-i".into(),
                    "-C".into(),
                    format!("source '{}'", rc.display()),
                ],
            )
        }
    };
    let mut env: Vec<(&str, String)> = vec![
        ("HOME", sb.home().display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("TERM", "xterm-256color".into()),
        ("LANG", "C.UTF-8".into()),
        ("VR_THE_SOURCE", sb.store().display().to_string()),
        ("SHELL", format!("/bin/{name}")),
    ];
    if !rc_lines.is_empty() {
        env.push(("ZDOTDIR", rc_lines));
    }
    let t = Tmux::start(&sb, &sb.path(), &env, &argv);
    let lines = [
        "cd p".to_string(),
        "echo hi > note.txt".into(),
        format!("test -e note.txt && echo seen >> {o}"),
        format!("echo *.txt >> {o}"),
        format!("wc -c < note.txt >> {o}"),
        "printf 'int main(void) {{ return 42; }}\\n' > r.c"
            .replace("{{", "{")
            .replace("}}", "}"),
        "cc -o r r.c".into(),
        format!("./r; echo rc {status} >> {o}"),
        format!("echo 'echo sourced >> {o}' > s.sh"),
        "source ./s.sh".into(),
        "cd ..".into(),
        format!("test -e p/note.txt || echo gone >> {o}"),
        format!("echo p/*.txt >> {o}"),
    ];
    for l in &lines {
        t.send(l);
    }
    let want = "seen\nnote.txt old.txt\n3\nrc 42\nsourced\ngone\np/old.txt\n";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = String::new();
    while Instant::now() < deadline {
        got = fs::read_to_string(&out).unwrap_or_default();
        if got.lines().count() >= want.lines().count() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        got,
        want,
        "{name}: what the shell saw\nscreen:\n{}",
        t.screen()
    );
    // Where the bytes landed: the rift, not the project's disk.
    for f in ["note.txt", "r.c", "r", "s.sh"] {
        assert!(!p.join(f).exists(), "{name}: {f} reached the disk");
    }
    assert_eq!(fs::read_to_string(p.join("old.txt")).unwrap(), "disk\n");
    assert_eq!(sb.ok(&p, &["cat", "note.txt"]), "hi\n");
}

#[test]
fn bash_itself_is_in_the_view() {
    shell_in_view("bash");
}

#[test]
fn zsh_itself_is_in_the_view() {
    shell_in_view("zsh");
}

#[test]
fn fish_itself_is_in_the_view() {
    shell_in_view("fish");
}
