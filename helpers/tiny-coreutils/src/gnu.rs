//! GNU coreutils' conventions: how names are quoted in messages, how
//! errors read, and the usage-error epilogue. Messages are those of the C
//! locale (ASCII quotes), which is what build logs and scripts compare.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{self, BufRead, Write};
use std::os::unix::ffi::OsStrExt;

/// An applet's voice: its name on every message, and whether anything failed.
pub struct Ui {
    pub prog: &'static str,
    failed: Cell<bool>,
}

impl Ui {
    pub fn new(prog: &'static str) -> Ui {
        Ui {
            prog,
            failed: Cell::new(false),
        }
    }

    /// `prog: msg`, and the run fails.
    pub fn error(&self, msg: &str) {
        eprintln!("{}: {msg}", self.prog);
        self.failed.set(true);
    }

    /// `prog: what: <strerror>`, and the run fails.
    pub fn error_io(&self, what: &str, e: &io::Error) {
        self.error(&format!("{what}: {}", describe(e)));
    }

    /// A usage error: the message, GNU's "Try" line, exit status 1.
    pub fn usage(&self, msg: &str) -> i32 {
        eprintln!("{}: {msg}", self.prog);
        eprintln!("Try '{} --help' for more information.", self.prog);
        1
    }

    /// The run fails without a message (`-f`).
    pub fn fail(&self) {
        self.failed.set(true);
    }

    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// The exit status so far: 0, or 1 once anything failed.
    pub fn status(&self) -> i32 {
        i32::from(self.failed())
    }

    /// Asks `question` on stderr and reads a line from stdin: yes if it
    /// starts with `y` or `Y` (GNU's rpmatch in the C locale).
    pub fn ask(&self, question: &str) -> bool {
        eprint!("{}: {question}", self.prog);
        let _ = io::stderr().flush();
        let mut line = String::new();
        match io::stdin().lock().read_line(&mut line) {
            Ok(_) => line.starts_with(['y', 'Y']),
            Err(_) => false,
        }
    }
}

/// The text of an error as GNU prints it: strerror for an errno, else the
/// error's own description.
pub fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => strerror(n),
        None => e.to_string(),
    }
}

/// libc's message for `errno` (glibc's, as the C tools print it).
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: the XSI strerror_r writes a NUL-terminated string into buf.
    let r = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return format!("Unknown error {errno}");
    }
    // SAFETY: NUL-terminated by strerror_r.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// GNU's `quote()`: always quoted, shell-escaped where needed
/// (`'a b'`, `"it's"`, `'a'$'\n''b'`).
pub fn quote(name: impl AsRef<OsStr>) -> String {
    shell_quote(name.as_ref().as_bytes(), true)
}

/// GNU's `quotef()`: quoted only when the shell would need it (`cat: x: …`).
pub fn quotef(name: impl AsRef<OsStr>) -> String {
    shell_quote(name.as_ref().as_bytes(), false)
}

fn is_plain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"%+,-./:=@_^".contains(&c)
}

fn shell_quote(s: &[u8], always: bool) -> String {
    let printable = |c: u8| (0x20..0x7f).contains(&c) || c >= 0x80;
    let text = std::str::from_utf8(s).ok();
    if !always && !s.is_empty() && s.iter().all(|&c| is_plain(c)) && s[0] != b'~' {
        return String::from_utf8_lossy(s).into_owned();
    }
    if let Some(t) = text.filter(|_| s.iter().all(|&c| printable(c))) {
        if !t.contains('\'') {
            return format!("'{t}'");
        }
        if !t.contains(['"', '$', '`', '\\']) {
            return format!("\"{t}\"");
        }
    }
    // Printable runs in single quotes ( ' as '\'' ), the rest as $'\ooo'.
    let mut out = String::new();
    let mut run = Vec::new();
    let flush = |run: &mut Vec<u8>, out: &mut String| {
        if !run.is_empty() {
            out.push('\'');
            out.push_str(&String::from_utf8_lossy(run).replace('\'', "'\\''"));
            out.push('\'');
            run.clear();
        }
    };
    let valid = text.is_some();
    for &c in s {
        if printable(c) && (valid || c < 0x80) {
            run.push(c);
            continue;
        }
        flush(&mut run, &mut out);
        let esc = match c {
            b'\n' => "\\n".to_string(),
            b'\t' => "\\t".to_string(),
            b'\r' => "\\r".to_string(),
            c => format!("\\{c:03o}"),
        };
        out.push_str(&format!("$'{esc}'"));
    }
    flush(&mut run, &mut out);
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// GNU's names for file types in prompts ("remove regular empty file …?").
pub fn file_type_name(mode: u32, size: u64) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG if size == 0 => "regular empty file",
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symbolic link",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character special file",
        libc::S_IFBLK => "block special file",
        _ => "weird file",
    }
}

/// `rwxr-xr-x` for the permission bits of `mode` (with s/S/t/T).
pub fn perm_string(mode: u32) -> String {
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: bool, s: bool, lower: char, upper: char| match (x, s) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    let mut s = String::with_capacity(9);
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_as_gnu_does() {
        assert_eq!(quote("x"), "'x'");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "\"it's\"");
        assert_eq!(quote("it's $x"), "'it'\\''s $x'");
        assert_eq!(quote("a\nb"), "'a'$'\\n''b'");
        assert_eq!(quotef("x/y.txt"), "x/y.txt");
        assert_eq!(quotef("a b"), "'a b'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn permission_strings() {
        assert_eq!(perm_string(0o755), "rwxr-xr-x");
        assert_eq!(perm_string(0o4644), "rwSr--r--");
        assert_eq!(perm_string(0o1777), "rwxrwxrwt");
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }
}
