//! GNU-style option parsing (getopt_long with argument permutation): short
//! clusters (`-rf`), attached or separate values (`-tDIR`, `-t DIR`), long
//! options with `=` or a separate value, unambiguous abbreviations
//! (`--rec`), `--` ending options, options after operands unless
//! `POSIXLY_CORRECT` is set.
//!
//! Each applet lists every long option of the real tool, marking those it
//! implements. Whatever does not parse cleanly — an unknown, unsupported or
//! ambiguous option, a missing value — is a [`Fallback`]: the real tool
//! parses it and prints its own diagnostic.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::Fallback;

/// Whether an option takes a value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Takes {
    No,
    Yes,
    /// Only attached (`--opt=value`), as getopt's optional arguments.
    Maybe,
}

/// A long option of the real tool: its name, whether it takes a value, and
/// the key the applet sees (`None`: not implemented here).
pub type Long = (&'static str, Takes, Option<char>);

/// The options of one tool.
pub struct Spec {
    /// getopt-style short options the applet implements: `"rfi"`, with `:`
    /// after a letter that takes a value.
    pub short: &'static str,
    pub long: &'static [Long],
}

/// Options in command-line order (key, value), and the operands.
#[derive(Debug, Default)]
pub struct Parsed {
    pub opts: Vec<(char, Option<OsString>)>,
    pub operands: Vec<OsString>,
    /// Dash-words a tool claimed before option parsing (see [`Spec::parse`]).
    pub claimed: Vec<OsString>,
}

impl Parsed {
    pub fn has(&self, key: char) -> bool {
        self.opts.iter().any(|(k, _)| *k == key)
    }

    /// The last value given for `key`.
    pub fn value(&self, key: char) -> Option<&OsStr> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

impl Spec {
    fn short_takes(&self, c: char) -> Option<Takes> {
        let s = self.short.as_bytes();
        let i = s.iter().position(|&b| b == c as u8 && b != b':')?;
        Some(if s.get(i + 1) == Some(&b':') {
            Takes::Yes
        } else {
            Takes::No
        })
    }

    fn find_long(&self, name: &str) -> Result<&Long, Fallback> {
        if let Some(exact) = self.long.iter().find(|l| l.0 == name) {
            return Ok(exact);
        }
        let mut hits = self.long.iter().filter(|l| l.0.starts_with(name));
        match (hits.next(), hits.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(Fallback::new(format!("unknown option --{name}"))),
            (Some(_), Some(_)) => Err(Fallback::new(format!("ambiguous option --{name}"))),
        }
    }

    /// Parses `args`. `claim` lets a tool take dash-words that are not
    /// options (chmod's `-w`) before they are read as options.
    pub fn parse(
        &self,
        args: &[OsString],
        claim: impl Fn(&[u8]) -> bool,
    ) -> Result<Parsed, Fallback> {
        let posix = std::env::var_os("POSIXLY_CORRECT").is_some();
        let mut out = Parsed::default();
        let mut i = 0;
        let mut only_operands = false;
        while i < args.len() {
            let arg = &args[i];
            let b = arg.as_bytes();
            i += 1;
            if !only_operands && b.len() >= 2 && b[0] == b'-' && claim(b) {
                out.claimed.push(arg.clone());
                continue;
            }
            if only_operands || b.len() < 2 || b[0] != b'-' {
                only_operands |= posix;
                out.operands.push(arg.clone());
                continue;
            }
            if b == b"--" {
                only_operands = true;
                continue;
            }
            if let Some(long) = b.strip_prefix(b"--") {
                let (name, attached) = match long.iter().position(|&c| c == b'=') {
                    Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]))),
                    None => (long, None),
                };
                let name = std::str::from_utf8(name)
                    .map_err(|_| Fallback::new("an option that is not UTF-8"))?;
                let (full, takes, key) = *self.find_long(name)?;
                let Some(key) = key else {
                    return Err(Fallback::new(if matches!(full, "help" | "version") {
                        format!("--{full} is the real tool's to answer")
                    } else {
                        format!("option --{full} is not implemented")
                    }));
                };
                let value = match (takes, attached) {
                    (Takes::No, Some(_)) => {
                        return Err(Fallback::new(format!("--{full} takes no value")))
                    }
                    (Takes::No, None) | (Takes::Maybe, None) => None,
                    (_, Some(v)) => Some(v.to_os_string()),
                    (Takes::Yes, None) => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            Some(v.clone())
                        }
                        None => return Err(Fallback::new(format!("--{full} needs a value"))),
                    },
                };
                out.opts.push((key, value));
                continue;
            }
            // A cluster of short options.
            let mut j = 1;
            while j < b.len() {
                let c = b[j] as char;
                j += 1;
                match self.short_takes(c) {
                    None => {
                        return Err(Fallback::new(format!(
                            "option -{} is not implemented",
                            String::from_utf8_lossy(&b[j - 1..j])
                        )))
                    }
                    Some(Takes::No) | Some(Takes::Maybe) => out.opts.push((c, None)),
                    Some(Takes::Yes) => {
                        let value = if j < b.len() {
                            OsStr::from_bytes(&b[j..]).to_os_string()
                        } else {
                            match args.get(i) {
                                Some(v) => {
                                    i += 1;
                                    v.clone()
                                }
                                None => return Err(Fallback::new(format!("-{c} needs a value"))),
                            }
                        };
                        out.opts.push((c, Some(value)));
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `--help` and `--version` belong to every tool; the real one prints them.
pub const COMMON: [Long; 2] = [("help", Takes::No, None), ("version", Takes::No, None)];

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        short: "rft:",
        long: &[
            ("recursive", Takes::No, Some('r')),
            ("force", Takes::No, Some('f')),
            ("target-directory", Takes::Yes, Some('t')),
            ("one-file-system", Takes::No, None),
            ("help", Takes::No, None),
        ],
    };

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn gnu_forms_parse() {
        let p = SPEC
            .parse(
                &os(&["a", "-rf", "--target-dir=d", "b", "--", "-x"]),
                |_| false,
            )
            .unwrap();
        assert!(p.has('r') && p.has('f'));
        assert_eq!(p.value('t'), Some(OsStr::new("d")));
        assert_eq!(p.operands, os(&["a", "b", "-x"]));
        let p = SPEC
            .parse(&os(&["-tdir", "x", "-t", "y", "-"]), |_| false)
            .unwrap();
        assert_eq!(p.value('t'), Some(OsStr::new("y")));
        assert_eq!(p.operands, os(&["x", "-"]));
        let p = SPEC.parse(&os(&["--rec", "--force"]), |_| false).unwrap();
        assert!(p.has('r') && p.has('f'));
    }

    #[test]
    fn anything_unclear_goes_to_the_real_tool() {
        for bad in [
            &["-z"][..],
            &["--one"],
            &["--help"],
            &["--nope"],
            &["-t"],
            &["--force=yes"],
        ] {
            assert!(SPEC.parse(&os(bad), |_| false).is_err(), "{bad:?}");
        }
        // "--f" is ambiguous in GNU rm too (--force, --foo…): here unique.
        assert!(SPEC.parse(&os(&["--f"]), |_| false).is_ok());
    }
}
