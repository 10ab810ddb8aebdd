//! `cat [-u] [FILE…]`: the view's content (a blob, a staging file or the
//! disk) to stdout; `-` and no operand read stdin.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::Path;

use crate::gnu::{quotef, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::Vfs;
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "u",
    long: &[
        ("show-all", Takes::No, None),
        ("number-nonblank", Takes::No, None),
        ("show-ends", Takes::No, None),
        ("number", Takes::No, None),
        ("squeeze-blank", Takes::No, None),
        ("show-tabs", Takes::No, None),
        ("show-nonprinting", Takes::No, None),
        COMMON[0],
        COMMON[1],
    ],
};

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let operands = if p.operands.is_empty() {
        vec![OsString::from("-")]
    } else {
        p.operands
    };
    // Unbuffered writes straight to fd 1, as GNU cat's full-block copies.
    // SAFETY: fd 1 stays open for the process; ManuallyDrop never closes it.
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    for op in &operands {
        let copied = if op == "-" {
            io::copy(&mut io::stdin().lock(), &mut *out).map(drop)
        } else {
            match fs
                .locate(Path::new(op), true)
                .and_then(|loc| fs.open_read(&loc))
            {
                Ok(mut f) => copy(&mut f, &mut out),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = copied {
            ui.error_io(&quotef(op), &e);
        }
    }
    let _ = out.flush();
    Ok(ui.status())
}

fn copy(from: &mut File, to: &mut File) -> io::Result<()> {
    io::copy(from, to).map(drop)
}
