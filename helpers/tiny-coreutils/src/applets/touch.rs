//! `touch [-a] [-m] [-c] [-h] [-d DATE] [-r REF] [-t STAMP] FILE…`: a
//! missing file is created in the rift (empty); times are entry metadata
//! (or the directory's own, directories being physical).

use std::ffi::OsString;
use std::path::Path;

use crate::date::{self, DateForm};
use crate::gnu::{quote, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Time, Vfs};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "acd:fhmr:t:",
    long: &[
        ("date", Takes::Yes, Some('d')),
        ("no-create", Takes::No, Some('c')),
        ("no-dereference", Takes::No, Some('h')),
        ("reference", Takes::Yes, Some('r')),
        ("time", Takes::Yes, Some('T')),
        COMMON[0],
        COMMON[1],
    ],
};

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let (mut access, mut modify) = (false, false);
    for (k, v) in &p.opts {
        match k {
            'a' => access = true,
            'm' => modify = true,
            'T' => match v.as_ref().and_then(|v| v.to_str()) {
                Some("atime" | "access" | "use") => access = true,
                Some("mtime" | "modify") => modify = true,
                _ => return Err(Fallback::new("a --time value it does not know")),
            },
            _ => {}
        }
    }
    if !access && !modify {
        (access, modify) = (true, true);
    }
    let no_create = p.has('c');
    let no_deref = p.has('h');
    let sources = [p.has('d'), p.has('r'), p.has('t')]
        .iter()
        .filter(|b| **b)
        .count();
    if p.has('d') && p.has('r') {
        return Err(Fallback::new("-d relative to -r is not implemented"));
    }
    if sources > 1 {
        ui.error("cannot specify times from more than one source");
        return Ok(1);
    }
    // (atime, mtime) to set, before -a/-m pick.
    let (at, mt) = if let Some(d) = p.value('d') {
        let text = d
            .to_str()
            .ok_or_else(|| Fallback::new("a date that is not UTF-8"))?;
        match date::parse_date(text) {
            DateForm::At(ns) => (Time::At(ns), Time::At(ns)),
            DateForm::Invalid => {
                ui.error(&format!("invalid date format {}", quote(d)));
                return Ok(1);
            }
            DateForm::Unknown => {
                return Err(Fallback::new(format!(
                    "the date {} needs GNU's date parser",
                    quote(d)
                )))
            }
        }
    } else if let Some(t) = p.value('t') {
        match t
            .to_str()
            .and_then(|t| date::parse_stamp(t, date::current_year()))
        {
            Some(ns) => (Time::At(ns), Time::At(ns)),
            None => {
                ui.error(&format!("invalid date format {}", quote(t)));
                return Ok(1);
            }
        }
    } else if let Some(r) = p.value('r') {
        let st = if no_deref {
            fs.lstat(Path::new(r))
        } else {
            fs.stat(Path::new(r))
        };
        match st {
            Ok(st) => (Time::At(st.atime_ns), Time::At(st.mtime_ns)),
            Err(e) => {
                ui.error_io(&format!("failed to get attributes of {}", quote(r)), &e);
                return Ok(1);
            }
        }
    } else {
        (Time::Now, Time::Now)
    };
    let at = if access { at } else { Time::Omit };
    let mt = if modify { mt } else { Time::Omit };
    if p.operands.is_empty() {
        return Ok(ui.usage("missing file operand"));
    }
    if p.operands.iter().any(|o| o == "-") {
        return Err(Fallback::new("touching stdout is not implemented"));
    }
    for op in &p.operands {
        let path = Path::new(op);
        let mut loc = match fs.locate(path, !no_deref) {
            Ok(l) => l,
            Err(e) => {
                ui.error_io(&format!("cannot touch {}", quote(op)), &e);
                continue;
            }
        };
        if !loc.exists() {
            if no_create {
                continue;
            }
            if no_deref {
                ui.error_io(
                    &format!("setting times of {}", quote(op)),
                    &std::io::Error::from_raw_os_error(libc::ENOENT),
                );
                continue;
            }
            let flags = libc::O_CREAT | libc::O_NONBLOCK | libc::O_NOCTTY;
            match fs.open_write(&loc, flags, 0o666 & !fs.umask) {
                Ok(f) => drop(f),
                Err(e) => {
                    ui.error_io(&format!("cannot touch {}", quote(op)), &e);
                    continue;
                }
            }
            match fs.locate(path, true) {
                Ok(l) => loc = l,
                Err(e) => {
                    ui.error_io(&format!("cannot touch {}", quote(op)), &e);
                    continue;
                }
            }
        }
        if let Err(e) = fs.utimes(&loc, at, mt) {
            ui.error_io(&format!("setting times of {}", quote(op)), &e);
        }
    }
    Ok(ui.status())
}
