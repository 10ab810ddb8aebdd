//! `cp [-r|-R] [-a] [-d] [-p] [--preserve[=LIST]] [-f] [-n] [-L|-P] [-v]
//! [-t DIR|-T] SRC… DEST`: content read from the view (blob, staging file
//! or disk), written through the daemon into the rift; directories made
//! physical; modes, owners and times set as entry metadata.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{join, targets};
use crate::gnu::{quote, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Loc, Stat, Time, Vfs};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "adfLnPpRrt:Tv",
    long: &[
        ("archive", Takes::No, Some('a')),
        ("attributes-only", Takes::No, None),
        ("backup", Takes::Maybe, None),
        ("copy-contents", Takes::No, None),
        ("debug", Takes::No, None),
        ("dereference", Takes::No, Some('L')),
        ("force", Takes::No, Some('f')),
        ("interactive", Takes::No, None),
        ("link", Takes::No, None),
        ("no-clobber", Takes::No, Some('n')),
        ("no-dereference", Takes::No, Some('P')),
        ("no-preserve", Takes::Yes, None),
        ("no-target-directory", Takes::No, Some('T')),
        ("one-file-system", Takes::No, None),
        ("parents", Takes::No, None),
        ("path", Takes::No, None),
        ("preserve", Takes::Maybe, Some('K')),
        ("recursive", Takes::No, Some('r')),
        ("reflink", Takes::Maybe, None),
        ("remove-destination", Takes::No, None),
        ("sparse", Takes::Yes, None),
        ("strip-trailing-slashes", Takes::No, None),
        ("suffix", Takes::Yes, None),
        ("symbolic-link", Takes::No, None),
        ("target-directory", Takes::Yes, Some('t')),
        ("update", Takes::Maybe, None),
        ("verbose", Takes::No, Some('v')),
        ("context", Takes::Maybe, None),
        COMMON[0],
        COMMON[1],
    ],
};

#[derive(Default)]
pub struct Opts {
    pub recursive: bool,
    /// Follow symlinks in the sources (else copy them as symlinks).
    pub deref: bool,
    pub mode: bool,
    pub owner: bool,
    pub times: bool,
    pub links: bool,
    pub force: bool,
    pub no_clobber: bool,
    pub verbose: bool,
}

impl Opts {
    /// What `mv` does across the domain's edge: `cp -a`.
    pub fn archive() -> Opts {
        Opts {
            recursive: true,
            deref: false,
            mode: true,
            owner: true,
            times: true,
            links: true,
            ..Opts::default()
        }
    }
}

fn preserve(o: &mut Opts, list: Option<&std::ffi::OsStr>) -> Result<(), Fallback> {
    let Some(list) = list else {
        (o.mode, o.owner, o.times) = (true, true, true);
        return Ok(());
    };
    for item in list.as_bytes().split(|&c| c == b',') {
        match item {
            b"mode" => o.mode = true,
            b"ownership" => o.owner = true,
            b"timestamps" => o.times = true,
            b"links" => o.links = true,
            b"all" => (o.mode, o.owner, o.times, o.links) = (true, true, true, true),
            _ => return Err(Fallback::new("a --preserve attribute it does not keep")),
        }
    }
    Ok(())
}

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let mut o = Opts::default();
    let mut deref: Option<bool> = None;
    for (k, v) in &p.opts {
        match k {
            'a' => {
                o.recursive = true;
                deref = Some(false);
                preserve(&mut o, Some("all".as_ref()))?;
            }
            'd' => {
                deref = Some(false);
                o.links = true;
            }
            'p' => preserve(&mut o, None)?,
            'K' => preserve(&mut o, v.as_deref())?,
            'L' => deref = Some(true),
            'P' => deref = Some(false),
            'r' | 'R' => o.recursive = true,
            'f' => o.force = true,
            'n' => o.no_clobber = true,
            'v' => o.verbose = true,
            _ => {}
        }
    }
    o.deref = deref.unwrap_or(!o.recursive);
    let Some(t) = targets(fs, ui, p.operands.clone(), p.value('t'), p.has('T'), true) else {
        return Ok(1);
    };
    let mut cp = Copier::new(fs, ui, &o);
    for (src, dst) in t.pairs() {
        cp.top(&src, &dst);
    }
    Ok(ui.status())
}

/// Copies trees through the view; shared with `mv` across the domain's edge.
pub struct Copier<'a> {
    fs: &'a Vfs<'a>,
    ui: &'a Ui,
    o: &'a Opts,
    /// Hard links among the sources (dev, ino) → the first copy made.
    linked: HashMap<(u64, u64), PathBuf>,
}

impl<'a> Copier<'a> {
    pub fn new(fs: &'a Vfs<'a>, ui: &'a Ui, o: &'a Opts) -> Copier<'a> {
        Copier {
            fs,
            ui,
            o,
            linked: HashMap::new(),
        }
    }

    /// Copies the operand `src` to `dst`; whether everything was copied.
    pub fn top(&mut self, src: &Path, dst: &Path) -> bool {
        let sloc = match self.fs.locate(src, self.o.deref) {
            Ok(l) if l.exists() => l,
            Ok(_) => {
                return self.err_io(
                    &format!("cannot stat {}", quote(src)),
                    &io::Error::from_raw_os_error(libc::ENOENT),
                )
            }
            Err(e) => return self.err_io(&format!("cannot stat {}", quote(src)), &e),
        };
        self.copy(&sloc, src, dst)
    }

    fn err(&self, msg: &str) -> bool {
        self.ui.error(msg);
        false
    }

    fn err_io(&self, what: &str, e: &io::Error) -> bool {
        self.ui.error_io(what, e);
        false
    }

    fn copy(&mut self, sloc: &Loc, src: &Path, dst: &Path) -> bool {
        let fs = self.fs;
        let sst = match fs.stat_loc(sloc) {
            Ok(s) => s,
            Err(e) => return self.err_io(&format!("cannot stat {}", quote(src)), &e),
        };
        if sst.is_dir() && !self.o.recursive {
            return self.err(&format!(
                "-r not specified; omitting directory {}",
                quote(src)
            ));
        }
        let dloc = match fs.locate(dst, false) {
            Ok(l) => l,
            Err(e) => {
                let what = if sst.is_dir() {
                    "cannot create directory"
                } else if sst.is_symlink() {
                    "cannot create symbolic link"
                } else {
                    "cannot create regular file"
                };
                return self.err_io(&format!("{what} {}", quote(dst)), &e);
            }
        };
        if sst.is_dir() {
            return self.copy_dir(sloc, &sst, src, &dloc, dst);
        }
        // An existing destination: what it is once followed.
        let (dloc, dst_st) = if dloc.exists() {
            let followed = if dloc.is_symlink() && !sst.is_symlink() {
                let target = fs.locate(dst, true).ok().filter(|l| l.exists());
                if target.is_none() {
                    return self.err(&format!(
                        "not writing through dangling symlink {}",
                        quote(dst)
                    ));
                }
                target
            } else {
                None
            };
            let dloc = followed.unwrap_or(dloc);
            let st = fs.stat_loc(&dloc).ok();
            (dloc, st)
        } else {
            (dloc, None)
        };
        if let Some(dst_st) = &dst_st {
            if dst_st.same_file(&sst) {
                return self.err(&format!(
                    "{} and {} are the same file",
                    quote(src),
                    quote(dst)
                ));
            }
            if dst_st.is_dir() {
                return self.err(&format!(
                    "cannot overwrite directory {} with non-directory",
                    quote(dst)
                ));
            }
            if self.o.no_clobber {
                return true;
            }
        } else if dst.as_os_str().as_bytes().ends_with(b"/") {
            return self.err_io(
                &format!("cannot create regular file {}", quote(dst)),
                &io::Error::from_raw_os_error(libc::ENOTDIR),
            );
        }
        let done = if self.o.links && sst.nlink > 1 && self.linked.contains_key(&(sst.dev, sst.ino))
        {
            self.hard_link(&sst, &dloc, dst_st.is_some(), dst)
        } else if sst.is_symlink() {
            self.copy_symlink(sloc, &sst, &dloc, dst_st.is_some(), dst)
        } else if self.o.recursive && !sst.is_file() {
            self.copy_special(&sst, &dloc, dst)
        } else {
            self.copy_file(sloc, &sst, src, &dloc, dst_st.as_ref(), dst)
        };
        if !done {
            return false;
        }
        if self.o.links && sst.nlink > 1 {
            self.linked
                .entry((sst.dev, sst.ino))
                .or_insert_with(|| dst.to_path_buf());
        }
        if self.o.verbose {
            println!("{} -> {}", quote(src), quote(dst));
        }
        true
    }

    fn hard_link(&mut self, sst: &Stat, dloc: &Loc, exists: bool, dst: &Path) -> bool {
        let first = self.linked[&(sst.dev, sst.ino)].clone();
        if exists && !self.remove_dest(dloc, dst) {
            return false;
        }
        let res = self
            .fs
            .locate(&first, false)
            .and_then(|old| self.fs.link(&old, dloc));
        match res {
            Ok(()) => true,
            Err(e) => self.err_io(
                &format!(
                    "cannot create hard link {} to {}",
                    quote(dst),
                    quote(&first)
                ),
                &e,
            ),
        }
    }

    fn remove_dest(&self, dloc: &Loc, dst: &Path) -> bool {
        match self.fs.unlink(dloc) {
            Ok(()) => true,
            Err(e) => self.err_io(&format!("cannot remove {}", quote(dst)), &e),
        }
    }

    fn copy_symlink(
        &mut self,
        sloc: &Loc,
        sst: &Stat,
        dloc: &Loc,
        exists: bool,
        dst: &Path,
    ) -> bool {
        let fs = self.fs;
        let target = match fs.read_link(sloc) {
            Ok(t) => t,
            Err(e) => return self.err_io(&format!("cannot read symbolic link {}", quote(dst)), &e),
        };
        if exists && !self.remove_dest(dloc, dst) {
            return false;
        }
        if let Err(e) = fs.symlink(target.as_os_str(), dloc) {
            return self.err_io(&format!("cannot create symbolic link {}", quote(dst)), &e);
        }
        self.attributes(dst, sst, false, false)
    }

    fn copy_special(&mut self, sst: &Stat, dloc: &Loc, dst: &Path) -> bool {
        let what = match sst.kind() {
            libc::S_IFIFO => "fifo",
            libc::S_IFSOCK => "socket",
            _ => "special file",
        };
        if let Err(e) = self.fs.mknod(dloc, sst.mode & !self.fs.umask, 0) {
            return self.err_io(&format!("cannot create {what} {}", quote(dst)), &e);
        }
        self.attributes(dst, sst, true, false)
    }

    fn copy_file(
        &mut self,
        sloc: &Loc,
        sst: &Stat,
        src: &Path,
        dloc: &Loc,
        dst_st: Option<&Stat>,
        dst: &Path,
    ) -> bool {
        let fs = self.fs;
        let mut input = match fs.open_read(sloc) {
            Ok(f) => f,
            Err(e) => return self.err_io(&format!("cannot open {} for reading", quote(src)), &e),
        };
        let new_mode = sst.mode & 0o777 & !fs.umask;
        let mut out = if dst_st.is_some() {
            match fs.open_write(dloc, libc::O_TRUNC, 0) {
                Ok(f) => f,
                Err(_) if self.o.force => {
                    // -f: a destination that cannot be opened is replaced.
                    if !self.remove_dest(dloc, dst) {
                        return false;
                    }
                    match fs.open_write(dloc, libc::O_CREAT | libc::O_EXCL, new_mode) {
                        Ok(f) => f,
                        Err(e) => {
                            return self
                                .err_io(&format!("cannot create regular file {}", quote(dst)), &e)
                        }
                    }
                }
                Err(e) => {
                    return self.err_io(&format!("cannot open {} for writing", quote(dst)), &e)
                }
            }
        } else {
            match fs.open_write(dloc, libc::O_CREAT | libc::O_EXCL, new_mode) {
                Ok(f) => f,
                Err(e) => {
                    return self.err_io(&format!("cannot create regular file {}", quote(dst)), &e)
                }
            }
        };
        if let Err(e) = io::copy(&mut input, &mut out) {
            return self.err_io(
                &format!("error copying {} to {}", quote(src), quote(dst)),
                &e,
            );
        }
        drop(out);
        self.attributes(dst, sst, true, false)
    }

    /// Sets what -p / --preserve keep on the copy at `dst` (found again:
    /// entry metadata lives in the rift). `follow`: dst is no symlink.
    fn attributes(&self, dst: &Path, sst: &Stat, follow: bool, created_dir: bool) -> bool {
        let o = self.o;
        if !(o.owner || o.mode || o.times || created_dir) {
            return true;
        }
        let fs = self.fs;
        let loc = match fs.locate(dst, follow) {
            Ok(l) => l,
            Err(e) => return self.err_io(&format!("cannot stat {}", quote(dst)), &e),
        };
        let is_link = sst.is_symlink();
        if o.owner {
            // Only root may give files away: like GNU's -p, a refusal is quiet.
            if let Err(e) = fs.chown(&loc, sst.uid, sst.gid) {
                if !matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) {
                    return self.err_io(
                        &format!("failed to preserve ownership for {}", quote(dst)),
                        &e,
                    );
                }
            }
        }
        if !is_link {
            let mode = if o.mode {
                Some(sst.mode & 0o7777)
            } else if created_dir {
                Some(sst.mode & 0o777 & !fs.umask)
            } else {
                None
            };
            if let Some(mode) = mode {
                let current = fs.stat_loc(&loc).map(|s| s.mode & 0o7777).ok();
                if current != Some(mode) {
                    if let Err(e) = fs.chmod(&loc, mode) {
                        return self
                            .err_io(&format!("preserving permissions for {}", quote(dst)), &e);
                    }
                }
            }
        }
        if o.times {
            let res = fs.utimes(&loc, Time::At(sst.atime_ns), Time::At(sst.mtime_ns));
            if let Err(e) = res {
                return self.err_io(&format!("preserving times for {}", quote(dst)), &e);
            }
        }
        true
    }

    fn copy_dir(&mut self, sloc: &Loc, sst: &Stat, src: &Path, dloc: &Loc, dst: &Path) -> bool {
        let fs = self.fs;
        // The destination's place, even if it does not exist yet.
        let dest_at = if dloc.exists() {
            dloc.clone()
        } else {
            Loc {
                at: fs.whereabouts(dst),
                node: crate::vfs::Node::Absent,
            }
        };
        if dest_at.is_within(sloc) {
            return self.err(&format!(
                "cannot copy a directory, {}, into itself, {}",
                quote(src),
                quote(dst)
            ));
        }
        let created = if dloc.exists() {
            let is_dir = fs.stat(dst).is_ok_and(|s| s.is_dir());
            if !is_dir {
                return self.err(&format!(
                    "cannot overwrite non-directory {} with directory {}",
                    quote(dst),
                    quote(src)
                ));
            }
            false
        } else {
            // u+rwx while the copy fills it; the final mode comes after.
            let mode = (sst.mode & 0o777 & !fs.umask) | 0o700;
            if let Err(e) = fs.mkdir(dloc, mode) {
                return self.err_io(&format!("cannot create directory {}", quote(dst)), &e);
            }
            true
        };
        if self.o.verbose {
            println!("{} -> {}", quote(src), quote(dst));
        }
        let names = match fs.read_dir(sloc) {
            Ok(n) => n,
            Err(e) => return self.err_io(&format!("cannot access {}", quote(src)), &e),
        };
        let mut ok = true;
        for name in names {
            let (s, d) = (join(src.as_os_str(), &name), join(dst.as_os_str(), &name));
            let child = if self.o.deref {
                fs.locate(&s, true)
            } else {
                fs.child(sloc, &name)
            };
            ok &= match child {
                Ok(c) if c.exists() => self.copy(&c, &s, &d),
                Ok(_) => self.err_io(
                    &format!("cannot stat {}", quote(&s)),
                    &io::Error::from_raw_os_error(libc::ENOENT),
                ),
                Err(e) => self.err_io(&format!("cannot stat {}", quote(&s)), &e),
            };
        }
        // Times last: filling the directory changed its mtime.
        self.attributes(dst, sst, true, created) && ok
    }
}
