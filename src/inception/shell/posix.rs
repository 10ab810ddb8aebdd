//! bash and zsh: the same sh syntax for variables and the `PS1` marker; they
//! differ only in how the hook is installed (bash: `PROMPT_COMMAND`; zsh:
//! `precmd` and `chpwd` via `add-zsh-hook`).

use std::ffi::OsStr;
use std::path::Path;

use super::{fill_hook, sh_quote, ShellSyntax};

pub struct Posix {
    hook: &'static str,
}

pub const BASH: Posix = Posix {
    hook: include_str!("../../../shells/bash.sh"),
};

pub const ZSH: Posix = Posix {
    hook: include_str!("../../../shells/zsh.zsh"),
};

impl ShellSyntax for Posix {
    fn set_env(&self, out: &mut Vec<u8>, name: &str, value: &OsStr) {
        super::sh_set_env(out, name, value)
    }
    fn unset_env(&self, out: &mut Vec<u8>, name: &str) {
        super::sh_unset_env(out, name)
    }
    fn prompt_on(&self, out: &mut Vec<u8>) {
        super::sh_prompt_on(out)
    }
    fn prompt_off(&self, out: &mut Vec<u8>) {
        super::sh_prompt_off(out)
    }
    fn view_on(&self, out: &mut Vec<u8>, root: &OsStr) {
        super::sh_view_on(out, root)
    }
    fn view_off(&self, out: &mut Vec<u8>) {
        super::sh_view_off(out)
    }
    fn hook(&self, vrift: &Path, shim: Option<&Path>) -> Vec<u8> {
        fill_hook(self.hook, vrift, shim, sh_quote)
    }
}
