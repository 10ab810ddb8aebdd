//! Shell syntax: one module per shell behind [`ShellSyntax`].

mod fish;
mod posix;

use std::ffi::OsStr;
use std::path::Path;

/// The shells vrift writes code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The prompt marker shown inside an inception.
pub const PROMPT_MARKER: &str = "(vrift 🌀) ";

impl Shell {
    /// `$SHELL`'s basename when it names a known shell, else bash.
    pub fn detect() -> Shell {
        let shell = std::env::var_os("SHELL").unwrap_or_default();
        match Path::new(&shell).file_name().and_then(|n| n.to_str()) {
            Some("zsh") => Shell::Zsh,
            Some("fish") => Shell::Fish,
            _ => Shell::Bash,
        }
    }

    pub fn syntax(self) -> &'static dyn ShellSyntax {
        match self {
            Shell::Bash => &posix::BASH,
            Shell::Zsh => &posix::ZSH,
            Shell::Fish => &fish::Fish,
        }
    }
}

/// How one shell spells what the inception code does.
pub trait ShellSyntax {
    /// Sets and exports `name`.
    fn set_env(&self, out: &mut Vec<u8>, name: &str, value: &OsStr);
    /// Removes `name` from the environment.
    fn unset_env(&self, out: &mut Vec<u8>, name: &str);
    /// Adds the prompt marker, remembering the prompt it wraps.
    fn prompt_on(&self, out: &mut Vec<u8>);
    /// Restores the prompt `prompt_on` wrapped (no-op when not wrapped).
    fn prompt_off(&self, out: &mut Vec<u8>);
    /// Puts the shell process itself in the view of `root` (its shim, when
    /// the hook started it with one, hears this: see `shim/src/state.rs`
    /// `shell_control`), and says once when it cannot be.
    fn view_on(&self, out: &mut Vec<u8>, root: &OsStr);
    /// Takes the shell process out of the view.
    fn view_off(&self, out: &mut Vec<u8>);
    /// The hook to load from the shell's rc file; `vrift` is this binary,
    /// `shim` the library an interactive shell restarts with (none found:
    /// the shell stays as it is, and says so on entering a project).
    fn hook(&self, vrift: &Path, shim: Option<&Path>) -> Vec<u8>;
}

/// The path a shell names to tell its shim to enter `root`'s view.
fn enter_path(root: &OsStr) -> Vec<u8> {
    let mut p = b"/proc/self/vrift/enter".to_vec();
    p.extend_from_slice(root.as_encoded_bytes());
    p
}

/// What a shell whose own file operations cannot see the view says, once.
const NOT_IN_VIEW: &str = "vrift: this shell itself is not in the view: its own redirections,      tests and globs see the disk, and what they write lands there; its commands are in the view.      Load the hook in the shell's rc file (`vrift hook --help`) and start a new shell, or use `vrift run -- $SHELL`.";

fn sh_view_on(out: &mut Vec<u8>, root: &OsStr) {
    out.extend_from_slice(b"test -e ");
    out.extend_from_slice(&sh_quote(&enter_path(root)));
    out.extend_from_slice(
        b" || :
",
    );
    let msg = sh_quote(NOT_IN_VIEW.as_bytes());
    out.extend_from_slice(
        b"if ! test -e /proc/self/vrift/active && [ -z \"${__vrift_unviewed-}\" ]; then
  __vrift_unviewed=1
  printf '%s\\n' ",
    );
    out.extend_from_slice(&msg);
    out.extend_from_slice(
        b" >&2
fi
",
    );
}

fn sh_view_off(out: &mut Vec<u8>) {
    out.extend_from_slice(b"test -e /proc/self/vrift/leave || :\n");
}

/// `value` quoted for sh-family shells: `'…'`, each `'` written `'\''`.
/// Works for any bytes but NUL.
pub fn sh_quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// `value` quoted for fish: `'…'` with `\` and `'` backslash-escaped.
pub fn fish_quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'\'');
    out
}

/// Replaces each `(placeholder, quoted value)` pair in a template.
fn fill(template: &str, values: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = template.as_bytes().to_vec();
    for (ph, value) in values {
        let mut next = Vec::with_capacity(out.len() + 64);
        let mut rest = out.as_slice();
        while let Some(i) = rest.windows(ph.len()).position(|w| w == *ph) {
            next.extend_from_slice(&rest[..i]);
            next.extend_from_slice(value);
            rest = &rest[i + ph.len()..];
        }
        next.extend_from_slice(rest);
        out = next;
    }
    out
}

/// The placeholders of the hook templates, filled with `quote`.
fn fill_hook(
    template: &str,
    vrift: &Path,
    shim: Option<&Path>,
    quote: fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let shim = shim.map_or(Vec::new(), |p| p.as_os_str().as_encoded_bytes().to_vec());
    fill(
        template,
        &[
            (b"{{vrift}}", &quote(vrift.as_os_str().as_encoded_bytes())),
            (b"{{shim}}", &quote(&shim)),
        ],
    )
}

/// `set_env`/`unset_env`/prompt code shared by bash and zsh.
fn sh_set_env(out: &mut Vec<u8>, name: &str, value: &OsStr) {
    out.extend_from_slice(b"export ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(&sh_quote(value.as_encoded_bytes()));
    out.push(b'\n');
}

fn sh_unset_env(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"unset ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn sh_prompt_on(out: &mut Vec<u8>) {
    let marker = String::from_utf8(sh_quote(PROMPT_MARKER.as_bytes())).unwrap();
    out.extend_from_slice(
        format!(
            "if [ -n \"${{PS1+x}}\" ]; then __vrift_ps1_state=set; __vrift_ps1=$PS1; \
             else __vrift_ps1_state=unset; __vrift_ps1=; fi\n\
             PS1={marker}\"$__vrift_ps1\"\n"
        )
        .as_bytes(),
    );
}

fn sh_prompt_off(out: &mut Vec<u8>) {
    let marker = String::from_utf8(sh_quote(PROMPT_MARKER.as_bytes())).unwrap();
    out.extend_from_slice(
        format!(
            "case \"${{__vrift_ps1_state-}}\" in\n\
             set) PS1=${{PS1#{marker}}} ;;\n\
             unset) unset PS1 ;;\n\
             esac\n\
             unset __vrift_ps1 __vrift_ps1_state\n"
        )
        .as_bytes(),
    );
}
