//! fish: `fish_prompt` event and `PWD` variable hooks, `fish_prompt` wrapped.

use std::ffi::OsStr;
use std::path::Path;

use super::{enter_path, fill_hook, fish_quote, ShellSyntax, NOT_IN_VIEW, PROMPT_MARKER};

pub struct Fish;

const HOOK: &str = include_str!("../../../shells/fish.fish");

impl ShellSyntax for Fish {
    fn set_env(&self, out: &mut Vec<u8>, name: &str, value: &OsStr) {
        out.extend_from_slice(b"set -gx ");
        out.extend_from_slice(name.as_bytes());
        let bytes = value.as_encoded_bytes();
        if name.ends_with("PATH") {
            // fish keeps *PATH variables as lists joined with `:` on export.
            if !bytes.is_empty() {
                for part in bytes.split(|&b| b == b':') {
                    out.push(b' ');
                    out.extend_from_slice(&fish_quote(part));
                }
            } else {
                out.extend_from_slice(b" ''");
            }
        } else {
            out.push(b' ');
            out.extend_from_slice(&fish_quote(bytes));
        }
        out.push(b'\n');
    }

    fn unset_env(&self, out: &mut Vec<u8>, name: &str) {
        out.extend_from_slice(b"set -e -g ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }

    fn prompt_on(&self, out: &mut Vec<u8>) {
        let marker = String::from_utf8(fish_quote(PROMPT_MARKER.as_bytes())).unwrap();
        out.extend_from_slice(
            format!(
                "set -g __vrift_prompt 1\n\
                 if not functions -q __vrift_orig_fish_prompt; and functions -q fish_prompt\n\
                 \x20   functions -c fish_prompt __vrift_orig_fish_prompt\n\
                 end\n\
                 function __vrift_set_status\n\
                 \x20   return $argv[1]\n\
                 end\n\
                 function fish_prompt\n\
                 \x20   set -l __vrift_status $status\n\
                 \x20   printf '%s' {marker}\n\
                 \x20   if functions -q __vrift_orig_fish_prompt\n\
                 \x20       __vrift_set_status $__vrift_status\n\
                 \x20       __vrift_orig_fish_prompt\n\
                 \x20   end\n\
                 end\n"
            )
            .as_bytes(),
        );
    }

    fn prompt_off(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"if set -q __vrift_prompt\n\
              \x20   functions -e fish_prompt\n\
              \x20   if functions -q __vrift_orig_fish_prompt\n\
              \x20       functions -c __vrift_orig_fish_prompt fish_prompt\n\
              \x20       functions -e __vrift_orig_fish_prompt\n\
              \x20   end\n\
              \x20   set -e -g __vrift_prompt\n\
              end\n",
        );
    }

    fn view_on(&self, out: &mut Vec<u8>, root: &OsStr) {
        out.extend_from_slice(b"test -e ");
        out.extend_from_slice(&fish_quote(&enter_path(root)));
        out.extend_from_slice(b"\nif not test -e /proc/self/vrift/active; and not set -q __vrift_unviewed\n    set -g __vrift_unviewed 1\n    printf '%s\\n' ");
        out.extend_from_slice(&fish_quote(NOT_IN_VIEW.as_bytes()));
        out.extend_from_slice(b" >&2\nend\n");
    }

    fn view_off(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"test -e /proc/self/vrift/leave\n");
    }

    fn hook(&self, vrift: &Path, shim: Option<&Path>) -> Vec<u8> {
        fill_hook(HOOK, vrift, shim, fish_quote)
    }
}
