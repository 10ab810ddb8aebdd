//! Compiles the C layer (variadic entry points stable Rust cannot define,
//! and the fts walker) and generates, from `exports.txt` (the one table of
//! exports and served system calls, documented in its header):
//! - `shim.map`, the version script that exports only the table's symbols;
//! - `fns.rs`, the `real!` rows of the real functions the shim forwards to;
//! - `syscalls.rs`, the dispatch of `syscall(2)` called directly;
//! - `served.rs`, the numbers the seccomp filter sends to the supervisor.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    for f in ["src/c/variadic.c", "src/c/fts.c", "exports.txt"] {
        println!("cargo:rerun-if-changed={f}");
    }
    cc::Build::new()
        .file("src/c/variadic.c")
        .file("src/c/fts.c")
        .flag("-fvisibility=default")
        .flag("-U_FORTIFY_SOURCE")
        .define("_GNU_SOURCE", None)
        .warnings(true)
        .cargo_metadata(false)
        .compile("vrift_variadic");

    let text = std::fs::read_to_string(Path::new(&dir).join("exports.txt")).unwrap();
    let table = Table::parse(&text);
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let map = Path::new(&out).join("shim.map");
    std::fs::write(&map, table.version_script()).unwrap();
    std::fs::write(Path::new(&out).join("fns.rs"), table.fns()).unwrap();
    std::fs::write(Path::new(&out).join("syscalls.rs"), table.dispatch(&arch)).unwrap();
    std::fs::write(Path::new(&out).join("served.rs"), table.served(&arch)).unwrap();
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
    // The C objects must be kept even though Rust does not reference them.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--whole-archive");
    println!("cargo:rustc-cdylib-link-arg={out}/libvrift_variadic.a");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-whole-archive");
    // Without std (the shipped panic=abort build) nothing else names libc:
    // record it as needed so the shim's references bind to its versions.
    println!("cargo:rustc-cdylib-link-arg=-lc");
    // No crt start files: the library's constructor is in .init_array, and
    // crtbegin's _init/__do_global_dtors_aux would only add page faults to
    // every process start and exit.
    println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
    // Loading costs every process start, so the file is laid out for it:
    // the library's calls to its own exports (the C layer's execve, stat,
    // opendir…) bind at link time instead of by a symbol lookup each at
    // load; read-only data shares the code's segment (one mapping fewer);
    // no RELRO (one mprotect fewer: the GOT it would protect is the
    // library's own).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic-functions");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,noseparate-code");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,norelro");
    // rust-lld (the default linker of x86_64 Linux since Rust 1.90) keeps
    // read-only data in a segment of its own despite `noseparate-code`;
    // `--no-rosegment` merges it into the code's. Each segment start page-
    // aligned in the file puts the whole RW part (relocated data, GOT) in
    // one page: one copy-on-write fault at load instead of two. Together:
    // as many page faults per exec as an empty preloaded library (55 for
    // /bin/true here, against 57 before and 48 with no preload). GNU ld
    // refuses `--no-rosegment`, so only when lld links.
    if links_with_lld() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--no-rosegment");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,separate-loadable-segments");
    }
}

/// Whether rustc links this build with its bundled lld: x86_64 Linux GNU
/// from Rust 1.90 on, unless the flags choose another linker.
fn links_with_lld() -> bool {
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let linker_env = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if target != "x86_64-unknown-linux-gnu"
        || std::env::var_os(linker_env).is_some()
        || ["linker", "link-self-contained"]
            .iter()
            .any(|f| flags.contains(f))
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("-V").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}

/// A symbol row of the table.
struct Row<'a> {
    symbol: &'a str,
    module: &'a str,
    syscalls: Vec<Number<'a>>,
    /// `fn(…) -> …`, or None for `-`.
    signature: Option<&'a str>,
}

/// A system call number of a row: `[ARCH:]NAME[/lib|/seccomp]`.
struct Number<'a> {
    name: &'a str,
    arch: Option<&'a str>,
    /// Served by `syscall()` in the library.
    library: bool,
    /// Sent by the seccomp filter to the supervisor.
    supervisor: bool,
}

impl<'a> Number<'a> {
    fn parse(token: &'a str) -> Number<'a> {
        let (arch, rest) = match token.split_once(':') {
            Some((a, r)) => (Some(a), r),
            None => (None, token),
        };
        let (name, library, supervisor) = match rest.split_once('/') {
            None => (rest, true, true),
            Some((n, "lib")) => (n, true, false),
            Some((n, "seccomp")) => (n, false, true),
            Some((_, w)) => panic!("exports.txt: `{token}`: /{w} is neither /lib nor /seccomp"),
        };
        Number {
            name,
            arch,
            library,
            supervisor,
        }
    }

    fn on(&self, arch: &str) -> bool {
        self.arch.is_none_or(|a| a == arch)
    }
}

/// A `SYSCALL NUMBER HANDLER` row.
struct Syscall<'a> {
    number: Number<'a>,
    /// A function of syscall.rs, or None for `-`.
    handler: Option<&'a str>,
}

struct Table<'a> {
    rows: Vec<Row<'a>>,
    syscalls: Vec<Syscall<'a>>,
}

impl<'a> Table<'a> {
    fn parse(text: &'a str) -> Table<'a> {
        let mut table = Table {
            rows: Vec::new(),
            syscalls: Vec::new(),
        };
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut w = line.split_whitespace();
            match w.next().unwrap() {
                "NOT" => {}
                "SYSCALL" => {
                    let (Some(number), Some(handler)) = (w.next(), w.next()) else {
                        panic!("exports.txt: `{line}`: syscall NUMBER HANDLER");
                    };
                    let number = Number::parse(number);
                    let handler = match handler {
                        "-" => None,
                        h => Some(h.strip_prefix("syscall::").unwrap_or_else(|| {
                            panic!("exports.txt: `{line}`: the handler is in syscall.rs")
                        })),
                    };
                    assert!(
                        handler.is_some() == number.library,
                        "exports.txt: `{line}`: a handler exactly when syscall() serves it"
                    );
                    table.syscalls.push(Syscall { number, handler });
                }
                symbol => {
                    let mut rest = &line[symbol.len()..];
                    let mut next = || {
                        let r = rest.trim_start();
                        let end = r.find(char::is_whitespace).unwrap_or(r.len());
                        rest = &r[end..];
                        &r[..end]
                    };
                    let (module, _test, syscalls) = (next(), next(), next());
                    let signature = rest.trim();
                    assert!(
                        !module.is_empty() && !signature.is_empty(),
                        "exports.txt: `{line}`: SYMBOL MODULE TEST SYSCALLS SIGNATURE"
                    );
                    let syscalls: Vec<Number> = match syscalls {
                        "-" => Vec::new(),
                        s => s.split(',').map(Number::parse).collect(),
                    };
                    let signature = (signature != "-").then_some(signature);
                    assert!(
                        syscalls.is_empty() || (signature.is_some() && !module.starts_with("c/")),
                        "exports.txt: `{line}`: a served number needs a Rust function and its signature"
                    );
                    table.rows.push(Row {
                        symbol,
                        module,
                        syscalls,
                        signature,
                    });
                }
            }
        }
        table
    }

    fn version_script(&self) -> String {
        let mut s = String::from("/* Generated by build.rs from exports.txt. */\n{\n  global:\n");
        for row in &self.rows {
            writeln!(s, "    {};", row.symbol).unwrap();
        }
        s.push_str("  local: *;\n};\n");
        s
    }

    /// The `real!` rows: every row with a signature.
    fn fns(&self) -> String {
        let mut s = String::from("// Generated by build.rs from exports.txt.\ncrate::real! {\n");
        for row in &self.rows {
            if let Some(sig) = row.signature {
                let id = row.symbol.trim_start_matches('_').to_uppercase();
                writeln!(s, "    {id} = \"{}\": {sig};", row.symbol).unwrap();
            }
        }
        s.push_str("}\n");
        s
    }

    /// `vrift_syscall`: each number `syscall()` serves, by its row's function
    /// (the raw arguments cast to its parameters) or its handler.
    fn dispatch(&self, arch: &str) -> String {
        let mut s = String::from(
            "// Generated by build.rs from exports.txt.\n\
             #[no_mangle]\n\
             pub extern \"C\" fn vrift_syscall(\n    \
             n: c_long,\n    a1: c_long,\n    a2: c_long,\n    a3: c_long,\n    \
             a4: c_long,\n    a5: c_long,\n    a6: c_long,\n) -> c_long {\n    \
             match n {\n",
        );
        for row in &self.rows {
            for n in row.syscalls.iter().filter(|n| n.library && n.on(arch)) {
                let sig = row.signature.unwrap();
                let args: Vec<String> = params(sig)
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| format!("a{} as {ty}", i + 1))
                    .collect();
                let path = match row.module {
                    "lib" => String::from("crate"),
                    m => format!("crate::{}", m.replace('/', "::")),
                };
                writeln!(
                    s,
                    "        libc::SYS_{} => {path}::{}({}) as c_long,",
                    n.name,
                    row.symbol,
                    args.join(", ")
                )
                .unwrap();
            }
        }
        for c in self.syscalls.iter().filter(|c| c.number.on(arch)) {
            if let Some(h) = c.handler {
                writeln!(
                    s,
                    "        libc::SYS_{} => super::{h}([a1, a2, a3, a4, a5, a6]),",
                    c.number.name
                )
                .unwrap();
            }
        }
        s.push_str("        _ => super::real(n, a1, a2, a3, a4, a5, a6),\n    }\n}\n");
        s
    }

    /// `SERVED`: the numbers the supervisor serves, in the table's order.
    fn served(&self, arch: &str) -> String {
        let mut s = String::from(
            "// Generated by build.rs from exports.txt.\n\
             /// The numbers the supervisor serves (see `serve::dispatch`).\n\
             pub const SERVED: &[c_long] = &[\n",
        );
        let numbers = self
            .rows
            .iter()
            .flat_map(|r| &r.syscalls)
            .chain(self.syscalls.iter().map(|c| &c.number));
        for n in numbers.filter(|n| n.supervisor && n.on(arch)) {
            writeln!(s, "    libc::SYS_{},", n.name).unwrap();
        }
        s.push_str("];\n");
        s
    }
}

/// The parameter types of `fn(A, B, …) -> R`, split at the top-level commas.
fn params(sig: &str) -> Vec<&str> {
    let inner = sig
        .strip_prefix("fn(")
        .and_then(|s| s.rsplit_once(") ->"))
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("exports.txt: `{sig}` is not `fn(…) -> …`"));
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' if !inner[..i].ends_with('-') => depth -= 1,
            ',' if depth == 0 => {
                out.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        out.push(inner[start..].trim());
    }
    out
}
