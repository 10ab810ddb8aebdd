//! A private tmux server running one interactive shell in a pty: how the
//! tests drive real bash, zsh and fish as a user at a terminal would.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::Sandbox;

pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .output()
        .or_else(|_| Command::new(program).arg("--version").output())
        .is_ok()
}

/// A private tmux server running one interactive shell.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("LANG", "C.UTF-8")
            .output()
            .unwrap()
    }

    pub fn start(sb: &Sandbox, cwd: &Path, env: &[(&str, String)], shell: &[String]) -> Tmux {
        let t = Tmux {
            socket: sb.path().join("tmux.sock"),
        };
        let mut args: Vec<String> = [
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "200",
            "-y",
            "50",
            "-c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(cwd.to_str().unwrap().into());
        args.push("env".into());
        args.push("-i".into());
        for (k, v) in env {
            args.push(format!("{k}={v}"));
        }
        args.extend(shell.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = t.cmd(&refs);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    pub fn send(&self, line: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "t", "-l", line])
            .status
            .success());
        assert!(self
            .cmd(&["send-keys", "-t", "t", "Enter"])
            .status
            .success());
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// The whole scrollback, wrapped lines joined.
    pub fn history(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"])
                .stdout,
        )
        .into_owned()
    }

    /// The last non-blank line of the pane.
    pub fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    /// Waits until `f` holds on the pane; panics with the pane after 30 s.
    pub fn wait_for(&self, what: &str, f: impl Fn(&Tmux) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; pane:\n{}", self.screen());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Waits for a file a shell command writes (atomically, via mv).
pub fn wait_file(t: &Tmux, path: &Path) -> String {
    t.wait_for(&format!("{}", path.display()), |_| path.exists());
    fs::read_to_string(path).unwrap()
}
