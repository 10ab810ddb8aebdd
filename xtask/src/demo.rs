//! `cargo xtask demo`: the CLI, step by step, on a generated project.
//!
//! Every step runs the real release binary and fails the demo if it fails;
//! the round trip ingest → materialize is checked against a pristine copy.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};

use crate::gen::{Tree, TreeSpec};
use crate::sandbox::{copy_tree, print_output, Sandbox, Vrift};
use crate::{cargo, compare};

/// A few hundred files, a couple of MB: the demo stays well under a minute.
const SAMPLE: TreeSpec = TreeSpec {
    files: 300,
    bytes: 2_000_000,
    dup_percent: 30,
    seed: 1,
};

/// The project's own files, beside node_modules.
const SOURCES: &[(&str, &str)] = &[
    (
        "package.json",
        "{\n  \"name\": \"demo-app\",\n  \"version\": \"1.0.0\",\n  \"main\": \"src/index.js\"\n}\n",
    ),
    ("README.md", "# demo-app\n\nA sample project for `cargo xtask demo`.\n"),
    (
        "src/index.js",
        "const { greet } = require('./lib/util');\nconsole.log(greet('vrift'));\n",
    ),
    (
        "src/lib/util.js",
        "exports.greet = (name) => `hello, ${name}`;\n",
    ),
    ("src/lib/format.js", "exports.pad = (s, n) => s.padStart(n);\n"),
];

pub fn run(keep: bool, dir: Option<PathBuf>) -> Result<()> {
    // The shim is found beside the binary by `vrift run`.
    let bin = cargo::build_release_vrift_and_shim()?.vrift;
    let sandbox = Sandbox::create(dir.as_deref(), "vrift-demo-")?;
    println!(
        "demo directory: {} (HOME, store and project live here; {})",
        sandbox.path().display(),
        if keep {
            "kept afterwards"
        } else {
            "removed afterwards unless --keep"
        }
    );
    let vrift = Vrift::new(bin, &sandbox);
    let result = Demo::new(&vrift, &sandbox).run();
    // A failed demo is small: keep it so the failure can be inspected.
    sandbox.finish(keep || result.is_err())?;
    result?;
    println!("\ndemo finished: every step succeeded");
    Ok(())
}

struct Demo<'a> {
    vrift: &'a Vrift<'a>,
    project: PathBuf,
    pristine: PathBuf,
    step: usize,
}

impl<'a> Demo<'a> {
    fn new(vrift: &'a Vrift<'a>, sandbox: &Sandbox) -> Demo<'a> {
        Demo {
            vrift,
            project: sandbox.path().join("project"),
            pristine: sandbox.path().join("pristine"),
            step: 0,
        }
    }

    fn header(&mut self, title: &str) {
        self.step += 1;
        println!("\n==> {}. {title}", self.step);
    }

    /// A step that is one vrift command.
    fn vrift_step(&mut self, args: &[&str]) -> Result<()> {
        self.header(&format!("vrift {}", args.join(" ")));
        self.vrift.run(&self.project, args)
    }

    fn run(mut self) -> Result<()> {
        self.header("create a sample project");
        let tree = self.create_project()?;

        self.vrift_step(&["init"])?;
        self.vrift_step(&["ingest"])?;
        let left = compare::census(&self.project.join("node_modules"))?;
        println!(
            "(on disk below node_modules: {} directories, {} files, {} symlinks)",
            left.dirs, left.files, left.symlinks
        );
        ensure!(left.files + left.symlinks == 0, "ingest left files on disk");

        self.vrift_step(&["status"])?;
        self.vrift_step(&["ls", "node_modules"])?;
        self.cat(&format!("node_modules/{}", tree.first_manifest()))?;

        self.header("a build inside the inception writes to the rift");
        self.build_in_the_rift()?;
        self.vrift_step(&["snapshot", "save", "deps"])?;
        self.vrift_step(&["snapshot", "list"])?;
        self.vrift_step(&["diff"])?;
        self.vrift_step(&["discard", "--yes"])?;
        self.vrift_step(&["materialize"])?;

        self.header("check: the project is identical to the pristine copy");
        self.check_round_trip()?;

        self.vrift_step(&["fsck"])?;
        self.vrift_step(&["gc"])?;
        self.vrift_step(&["gc", "--delete"])?;
        self.check_store_after_gc()
    }

    /// Writes the sources and a generated node_modules, then a pristine copy.
    fn create_project(&self) -> Result<Tree> {
        for (rel, text) in SOURCES {
            let path = self.project.join(rel);
            fs::create_dir_all(path.parent().expect("sources are below the project"))?;
            fs::write(&path, text)?;
        }
        let tree = Tree::plan(&SAMPLE);
        let modules = self.project.join("node_modules");
        tree.write(&modules)?;
        // Odd cases a real node_modules has: npm's hidden lockfile, an empty file.
        fs::write(
            modules.join(".package-lock.json"),
            "{\"lockfileVersion\": 3}\n",
        )?;
        let first = modules.join(tree.first_manifest());
        fs::write(first.with_file_name(".npmignore"), "")?;
        let c = compare::census(&modules)?;
        println!(
            "{}: {} sources; node_modules with {} packages: {} files ({} bytes; {} of the \
             generated ones duplicate another's content), {} symlinks (.bin/ and aliases)",
            self.project.display(),
            SOURCES.len(),
            tree.package_count(),
            c.files,
            c.bytes,
            tree.file_count() - tree.unique_contents(),
            c.symlinks
        );
        copy_tree(&self.project, &self.pristine)?;
        println!(
            "pristine copy for the final check: {}",
            self.pristine.display()
        );
        Ok(tree)
    }

    /// `vrift cat` of an ingested file must print exactly the original bytes.
    fn cat(&mut self, rel: &str) -> Result<()> {
        self.header(&format!("vrift cat {rel}"));
        println!("$ vrift cat {rel}");
        let out = self.vrift.output(&self.project, &["cat", rel])?;
        print_output(&out);
        let expected = fs::read(self.pristine.join(rel))?;
        ensure!(
            out.stdout == expected,
            "vrift cat {rel} differs from the original file"
        );
        println!("(identical to the original file)");
        Ok(())
    }

    /// A real build step under `vrift run`: its processes write, rewrite and
    /// delete files; the view shows it, the disk does not change.
    fn build_in_the_rift(&mut self) -> Result<()> {
        let script = "mkdir -p dist && cat src/lib/util.js src/index.js > dist/app.js \
                      && echo \"console.log('edited inside the inception');\" > src/index.js \
                      && rm README.md && ls";
        self.vrift_step(&["run", "--", "sh", "-c", script])?;
        ensure!(
            !self.project.join("dist/app.js").exists()
                && self.project.join("README.md").exists()
                && fs::read(self.project.join("src/index.js"))?
                    == fs::read(self.pristine.join("src/index.js"))?,
            "the build reached the project's disk"
        );
        println!("(on disk: no dist/app.js, README.md still there, src/index.js unchanged)");
        let out = self.vrift.output(&self.project, &["cat", "src/index.js"])?;
        ensure!(
            out.stdout == b"console.log('edited inside the inception');\n",
            "the view does not show the rewritten src/index.js"
        );
        println!("(in the view: src/index.js rewritten, dist/app.js new, README.md gone)");
        Ok(())
    }

    fn check_round_trip(&self) -> Result<()> {
        let (diffs, seen) = compare::trees(&self.project, &self.pristine, &[".vrift"])?;
        if !diffs.is_empty() {
            bail!(
                "the materialized project differs from the pristine copy:\n  {}",
                diffs.join("\n  ")
            );
        }
        println!(
            "identical: {} directories, {} files ({} bytes), {} symlinks \
             (names, types, modes, contents, file mtimes, link targets)",
            seen.dirs, seen.files, seen.bytes, seen.symlinks
        );
        Ok(())
    }

    /// After `gc --delete` only the snapshot's two file blobs may remain.
    fn check_store_after_gc(&self) -> Result<()> {
        let out = self.vrift.output(&self.project, &["status", "--json"])?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let blobs = status["store"]["blobs"]
            .as_u64()
            .context("status has store.blobs")?;
        ensure!(
            blobs == 2,
            "after gc --delete the store holds {blobs} blobs; expected the 2 snapshot \"deps\" references"
        );
        println!("(the store keeps exactly the 2 blobs snapshot \"deps\" references)");
        Ok(())
    }
}
