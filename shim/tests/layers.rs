//! The shim's modules form layers that read bottom-up (STYLE.md: "a lower
//! module never imports a higher one for a type or a constant; move the
//! type down instead"). This test reads `shim/src`, finds what each module
//! names of the others (`crate::x`, `use crate::{x, …}`, `super::x`, a
//! submodule from its parent, and the macros `raw_syscall!`/`call_real!`/…
//! as the modules they are defined in and expand to), and fails on any
//! reference that does not point strictly down [`ORDER`] — so on any cycle
//! too — and on a module missing from [`ORDER`].
//!
//! The graph is written out in the module doc of `shim/src/lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `shim/src` (`seccomp::serve` for `seccomp/serve.rs`),
/// bottom first. A module may only name modules before it. `lib.rs`, the
/// crate root, is above them all.
const ORDER: &[&str] = &[
    // Raw system calls, constants, and the real libc functions.
    "sys",
    "elfdyn",
    "seccomp::filter",
    "real",
    "fns",
    // Process state: the root, the mapped table, the caches.
    "state",
    "cwd",
    // Talking to the daemon.
    "client",
    // Resolution: what a path names in the view, what an fd shows.
    "statbuf",
    "fdtable",
    "resolve",
    // Credential changes keep the way to the daemon.
    "creds",
    // Families of interposers.
    "stat",
    "write",
    "open",
    "xattr",
    "seccomp::launch",
    "exec",
    "fds",
    "dir",
    "special",
    "audit",
    // Dispatch: syscall(2), the walkers (fts, nftw, glob) that call back
    // into the interposers, and the seccomp supervisor that serves calls
    // through them.
    "syscall",
    "walk",
    "seccomp::target",
    "seccomp::serve",
    "seccomp",
];

struct Module {
    name: String,
    /// The source with comments removed.
    text: String,
    /// `seccomp` for `seccomp/serve.rs`.
    parent: Option<String>,
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn modules(src: &Path) -> Vec<Module> {
    let mut out = Vec::new();
    let mut read = |path: &Path, name: String, parent: Option<String>| {
        let text = std::fs::read_to_string(path).unwrap();
        out.push(Module {
            name,
            text: strip_comments(&text),
            parent,
        });
    };
    for e in std::fs::read_dir(src).unwrap() {
        let path = e.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            for f in std::fs::read_dir(&path).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "rs") {
                    let sub = f.file_stem().unwrap().to_str().unwrap();
                    let name = match sub {
                        "mod" => stem.clone(),
                        _ => format!("{stem}::{sub}"),
                    };
                    let parent = (sub != "mod").then(|| stem.clone());
                    read(&f, name, parent);
                }
            }
        } else if path.extension().is_some_and(|x| x == "rs") && stem != "lib" {
            read(&path, stem, None);
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Each occurrence of `prefix` (not preceded by an identifier character or
/// `$`), with the identifier after it and the text after that.
fn after<'a>(text: &'a str, prefix: &str) -> Vec<(&'a str, &'a str)> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix) {
        let at = from + i;
        from = at + prefix.len();
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b'$' || b[at - 1] == b':') {
            continue;
        }
        let end = text[from..]
            .bytes()
            .position(|c| !is_ident(c))
            .map_or(text.len(), |n| from + n);
        found.push((&text[from..end], &text[end..]));
    }
    found
}

/// `macro_rules! name { … }`: the name and its body.
fn macros(text: &str) -> Vec<(&str, &str)> {
    after(text, "macro_rules!")
        .into_iter()
        .map(|(_, rest)| {
            let rest = rest.trim_start();
            let n = rest.bytes().position(|c| !is_ident(c)).unwrap();
            let name = &rest[..n];
            let open = rest.find('{').unwrap();
            let mut depth = 0;
            let mut end = open;
            for (i, c) in rest[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            (name, &rest[open..end])
        })
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let names: BTreeSet<String> = mods.iter().map(|m| m.name.clone()).collect();
    // A macro stands for the module defining it and the modules its body
    // names (`$crate::fns::…` is named where the macro is used).
    let mut macro_deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &mods {
        for (name, body) in macros(&m.text) {
            let mut deps = BTreeSet::from([m.name.clone()]);
            for (id, _) in after(body, "$crate::") {
                if names.contains(id) {
                    deps.insert(id.to_string());
                }
            }
            macro_deps.insert(name.to_string(), deps);
        }
    }
    let mut g = BTreeMap::new();
    for m in &mods {
        let mut deps = BTreeSet::new();
        let mut module_or_macro = |id: &str, rest: &str| {
            if let Some(sub) = rest.strip_prefix("::") {
                let n = sub.bytes().position(|c| !is_ident(c)).unwrap_or(sub.len());
                let full = format!("{id}::{}", &sub[..n]);
                if names.contains(&full) {
                    deps.insert(full);
                    return;
                }
            }
            if let Some(d) = macro_deps.get(id) {
                deps.extend(d.iter().cloned());
            } else if names.contains(id) {
                deps.insert(id.to_string());
            }
        };
        for (id, rest) in after(&m.text, "crate::") {
            module_or_macro(id, rest);
        }
        // `use crate::{a, b::c, d}`.
        for (_, rest) in after(&m.text, "use crate::") {
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap()];
                for item in group.split(',') {
                    let item = item.trim();
                    let n = item
                        .bytes()
                        .position(|c| !is_ident(c))
                        .unwrap_or(item.len());
                    module_or_macro(&item[..n], &item[n..]);
                }
            }
        }
        // Macros used by their bare name (imported, or `#[macro_export]`).
        for (name, d) in &macro_deps {
            let call = format!("{name}!");
            if after(&m.text, &call).iter().any(|_| true) {
                deps.extend(d.iter().cloned());
            }
        }
        // A submodule's `super::x`, a parent's `x::` for its own submodule.
        if let Some(parent) = &m.parent {
            for (id, _) in after(&m.text, "super::") {
                let full = format!("{parent}::{id}");
                deps.insert(if names.contains(&full) {
                    full
                } else {
                    parent.clone()
                });
            }
        }
        for child in names
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("{}::", m.name)))
        {
            if !after(&m.text, &format!("{child}::")).is_empty() {
                deps.insert(format!("{}::{child}", m.name));
            }
        }
        deps.remove(&m.name);
        g.insert(m.name.clone(), deps);
    }
    g
}

#[test]
fn every_module_names_only_modules_below_it() {
    let g = graph();
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut wrong = Vec::new();
    for m in g.keys() {
        if rank(m).is_none() {
            wrong.push(format!(
                "{m} is not in ORDER (tests/layers.rs): give it its layer"
            ));
        }
    }
    for o in ORDER {
        if !g.contains_key(*o) {
            wrong.push(format!("{o} is in ORDER but not in shim/src"));
        }
    }
    for (m, deps) in &g {
        for d in deps {
            if let (Some(a), Some(b)) = (rank(m), rank(d)) {
                if b >= a {
                    wrong.push(format!("{m} → {d}: names a module above it"));
                }
            }
        }
    }
    let listing = listing(&g);
    assert!(
        wrong.is_empty(),
        "{}\n\nthe graph:\n{listing}",
        wrong.join("\n")
    );
}

/// The graph as the module doc of `lib.rs` shows it.
fn listing(g: &BTreeMap<String, BTreeSet<String>>) -> String {
    ORDER
        .iter()
        .filter_map(|m| g.get(*m).map(|d| (m, d)))
        .map(|(m, d)| {
            let deps = d.iter().cloned().collect::<Vec<_>>().join(" ");
            let deps = if deps.is_empty() {
                "—".to_string()
            } else {
                deps
            };
            format!("//! {m:<15} → {deps}\n")
        })
        .collect()
}

#[test]
fn the_library_doc_shows_the_graph() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let listing = listing(&graph());
    assert!(
        lib.contains(&format!("//! ```text\n{listing}//! ```\n")),
        "the module doc of shim/src/lib.rs must show the graph as it is:\n{listing}"
    );
}

/// The test sees what it must: an upward reference of each kind it parses
/// is reported.
#[test]
fn an_upward_reference_is_seen() {
    let text = "use crate::{state, walk::Ftw};\nfn f() { crate::open::x(); call_real!(X()); }";
    let calls: Vec<&str> = after(text, "crate::").iter().map(|(id, _)| *id).collect();
    assert_eq!(calls, ["", "open"], "a group is read apart");
    assert_eq!(after("$crate::fns::X", "crate::").len(), 0);
    let body = macros("macro_rules! m { ($a:expr) => {{ $crate::fns::$a }}; }");
    assert_eq!(body.len(), 1);
    assert_eq!(after(body[0].1, "$crate::")[0].0, "fns");
    // The real tree: `client` names `real` (its macro), `exec` names
    // `write`. (`fns` is generated by build.rs into OUT_DIR: its rows name
    // only `real!`, which this test cannot see.)
    let g = graph();
    assert!(g["client"].contains("real"));
    assert!(g["exec"].contains("write"));
    assert!(
        g["exec"].contains("fns"),
        "call_real! expands to crate::fns"
    );
    assert!(g["seccomp::serve"].contains("seccomp::target"));
    assert!(g["seccomp"].contains("seccomp::serve"));
}
