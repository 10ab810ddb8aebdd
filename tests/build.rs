//! Makefile-transparent builds: a real C project with a real Makefile
//! (subdirectories, a static and a shared library, a generated header,
//! `make install DESTDIR=…` with install/cp/chmod/mkdir -p) builds under
//! `vrift run` exactly as it does natively, with nothing written to the
//! project's disk; make's up-to-date logic, `make clean`, and snapshots
//! behave.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

const MAKEFILE: &str = r#"
CC ?= cc
CFLAGS = -O2 -Wall -Iinclude -Ibuild
PREFIX = /usr/local

LIB_OBJS = build/lib/util.o build/lib/strings.o
SH_OBJS = build/shared/greet.o

all: build/bin/app build/bin/tool

build/config.h: include/config.h.in
	@mkdir -p build
	@echo "GEN $@"
	sed -e 's/@VERSION@/1.2.3/' $< > $@.tmp
	mv $@.tmp $@

build/lib/%.o: lib/%.c build/config.h include/util.h
	@mkdir -p $(dir $@)
	@echo "CC $@"
	$(CC) $(CFLAGS) -c $< -o $@

build/shared/%.o: shared/%.c include/util.h
	@mkdir -p $(dir $@)
	@echo "CC $@"
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

build/libutil.a: $(LIB_OBJS)
	@echo "AR $@"
	rm -f $@
	ar rcs $@ $^

build/libgreet.so: $(SH_OBJS)
	@echo "LD $@"
	$(CC) -shared -o $@ $^

build/bin/app: src/main.c build/libutil.a build/libgreet.so build/config.h
	@mkdir -p build/bin
	@echo "LINK $@"
	$(CC) $(CFLAGS) src/main.c -o $@ -Lbuild -lutil -lgreet -Wl,-rpath,'$$ORIGIN/..'

build/bin/tool: src/tool.c build/libutil.a build/config.h
	@mkdir -p build/bin
	@echo "LINK $@"
	$(CC) $(CFLAGS) src/tool.c -o $@ -Lbuild -lutil

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib
	install -m 755 build/bin/app $(DESTDIR)$(PREFIX)/bin/app
	cp build/libgreet.so $(DESTDIR)$(PREFIX)/lib/
	chmod 644 $(DESTDIR)$(PREFIX)/lib/libgreet.so
	mkdir -p $(DESTDIR)$(PREFIX)/include/app
	cp include/util.h $(DESTDIR)$(PREFIX)/include/app/
	ln -sf app $(DESTDIR)$(PREFIX)/bin/app-link

clean:
	rm -rf build

.PHONY: all install clean
"#;

fn write_project(dir: &Path) {
    let files: &[(&str, &str)] = &[
        ("Makefile", MAKEFILE),
        ("include/config.h.in", "#define APP_VERSION \"@VERSION@\"\n"),
        (
            "include/util.h",
            "int add(int a, int b);\nint shout(char *s);\nconst char *greet(void);\n",
        ),
        (
            "lib/util.c",
            "#include \"config.h\"\n#include \"util.h\"\nint add(int a, int b) { return a + b; }\n",
        ),
        (
            "lib/strings.c",
            "#include <ctype.h>\n#include \"util.h\"\nint shout(char *s) { int n = 0; for (; *s; s++, n++) *s = toupper(*s); return n; }\n",
        ),
        (
            "shared/greet.c",
            "#include \"util.h\"\nconst char *greet(void) { return \"hello\"; }\n",
        ),
        (
            "src/tool.c",
            "#include <stdio.h>\n#include \"config.h\"\n#include \"util.h\"\nint main(void) { char s[] = \"tool\"; shout(s); printf(\"%s %d v%s\\n\", s, add(1, 2), APP_VERSION); return 0; }\n",
        ),
        (
            "src/main.c",
            "#include <stdio.h>\n#include \"config.h\"\n#include \"util.h\"\nint main(void) { char s[] = \"rift\"; shout(s); printf(\"%s %s %d v%s\\n\", greet(), s, add(40, 2), APP_VERSION); return 0; }\n",
        ),
    ];
    for (rel, text) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

/// Every file below `dir/rel` as seen by `sh` (in the view when `view`):
/// path, mode, size and checksum.
fn outputs(sb: &Sandbox, dir: &Path, rel: &str, view: bool) -> String {
    let script = format!(
        "cd {rel} 2>/dev/null || exit 0; find . \\( -type f -o -type l \\) | LC_ALL=C sort | while read -r f; do \
         if [ -L \"$f\" ]; then echo \"$f -> $(readlink \"$f\")\"; \
         else echo \"$f $(stat -c %a \"$f\") $(cksum < \"$f\")\"; fi; done"
    );
    sh_in_view_or_natively(sb, dir, &script, view)
}

fn native_make(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("make")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "native make {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn rift_make(sb: &Sandbox, dir: &Path, args: &[&str]) -> String {
    let mut a = vec!["run", "--", "make"];
    a.extend_from_slice(args);
    sb.ok(dir, &a)
}

/// The lines make printed for the steps it ran (GEN/CC/AR/LD/LINK).
fn steps(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| {
            ["GEN ", "CC ", "AR ", "LD ", "LINK "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

fn has_make_and_cc() -> bool {
    has_cc()
        && Command::new("make")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        && Command::new("ar")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn a_makefile_project_builds_in_the_rift_exactly_as_natively() {
    if !has_make_and_cc() {
        skip("make, cc or ar is missing");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    write_project(&root);
    write_project(&twin);
    sb.ok(&root, &["init"]);
    let disk_before = disk_files(&root);

    // A clean parallel build, natively and in the rift.
    let n = native_make(&twin, &["-j2"]);
    let r = rift_make(&sb, &root, &["-j2"]);
    let (mut ns, mut rs) = (steps(&n), steps(&r));
    ns.sort();
    rs.sort();
    assert_eq!(ns, rs, "the same steps ran");
    assert_eq!(ns.len(), 8, "{n}");
    assert_eq!(
        outputs(&sb, &root, "build", true),
        outputs(&sb, &twin, "build", false),
        "outputs are byte-identical"
    );
    // Programs built in the rift run from it, with the shared library built
    // in the rift (found through $ORIGIN).
    assert_eq!(
        sb.ok(&root, &["run", "--", "./build/bin/tool"]),
        "TOOL 3 v1.2.3\n"
    );
    let app = Command::new("./build/bin/app")
        .current_dir(&twin)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&app.stdout),
        "hello RIFT 42 v1.2.3\n"
    );
    assert_eq!(
        sb.ok(&root, &["run", "--", "./build/bin/app"]),
        "hello RIFT 42 v1.2.3\n"
    );

    // Nothing reached the project's disk but the build's directories.
    assert_eq!(disk_files(&root), disk_before);

    // A second make does nothing.
    assert!(steps(&rift_make(&sb, &root, &[])).is_empty());
    let q = sb.run(&root, &["run", "--", "make", "-q"]);
    assert!(q.status.success(), "make -q says up to date");

    // A source edited outside the inception rebuilds exactly its dependents.
    std::thread::sleep(std::time::Duration::from_millis(20));
    for d in [&root, &twin] {
        let p = d.join("lib/strings.c");
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, text.replace("n++", "++n, 0")).unwrap();
    }
    // The disk as the user left it: what the rest must not change.
    let disk_edited = disk_files(&root);
    let r = rift_make(&sb, &root, &[]);
    let mut st = steps(&r);
    st.sort();
    assert_eq!(
        st,
        vec![
            "AR build/libutil.a",
            "CC build/lib/strings.o",
            "LINK build/bin/app",
            "LINK build/bin/tool"
        ]
    );
    native_make(&twin, &[]);
    assert_eq!(
        outputs(&sb, &root, "build", true),
        outputs(&sb, &twin, "build", false)
    );

    // make install into a staging DESTDIR inside the project.
    rift_make(&sb, &root, &["install", "DESTDIR=$(CURDIR)/stage"]);
    native_make(&twin, &["install", "DESTDIR=$(CURDIR)/stage"]);
    let staged = outputs(&sb, &root, "stage", true);
    assert!(staged.contains("./usr/local/bin/app 755"), "{staged}");
    assert!(
        staged.contains("./usr/local/lib/libgreet.so 644"),
        "{staged}"
    );
    assert!(
        staged.contains("./usr/local/bin/app-link -> app"),
        "{staged}"
    );
    assert_eq!(staged, outputs(&sb, &twin, "stage", false));

    // Snapshots: save, discard (the next make rebuilds), restore (it does not).
    sb.ok(&root, &["snapshot", "save", "built"]);
    sb.ok(&root, &["discard", "--yes"]);
    let gone = sb.run(&root, &["run", "--", "test", "-e", "build/bin/app"]);
    assert!(!gone.status.success(), "discarded");
    assert_eq!(steps(&rift_make(&sb, &root, &[])).len(), 8);
    sb.ok(&root, &["snapshot", "restore", "built"]);
    assert!(steps(&rift_make(&sb, &root, &[])).is_empty());
    assert_eq!(
        sb.ok(&root, &["run", "--", "./build/bin/tool"]),
        "TOOL 3 v1.2.3\n"
    );

    // make clean empties the build in the view.
    rift_make(&sb, &root, &["clean"]);
    assert_eq!(outputs(&sb, &root, "build", true), "");
    assert_eq!(disk_files(&root), disk_edited);
    assert!(!root.join("build/bin/app").exists());
}
