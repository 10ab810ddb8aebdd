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
    /// The hook to load from the shell's rc file; `vrift` is this binary.
    fn hook(&self, vrift: &Path) -> Vec<u8>;
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

/// Replaces `{{vrift}}` in a template with the quoted binary path.
fn fill(template: &str, vrift_quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 64);
    let mut rest = template.as_bytes();
    const PH: &[u8] = b"{{vrift}}";
    while let Some(i) = rest.windows(PH.len()).position(|w| w == PH) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(vrift_quoted);
        rest = &rest[i + PH.len()..];
    }
    out.extend_from_slice(rest);
    out
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
