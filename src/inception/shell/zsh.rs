//! zsh: `precmd` and `chpwd` hooks, `PS1` marker.

use std::ffi::OsStr;
use std::path::Path;

use super::{fill, sh_quote, ShellSyntax};

pub struct Zsh;

const HOOK: &str = include_str!("../../../shells/zsh.zsh");

impl ShellSyntax for Zsh {
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
    fn hook(&self, vrift: &Path) -> Vec<u8> {
        fill(HOOK, &sh_quote(vrift.as_os_str().as_encoded_bytes()))
    }
}
