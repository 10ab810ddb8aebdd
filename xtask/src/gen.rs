//! Deterministic node_modules-like trees for the demo and the bench.
//!
//! A tree is planned first (paths, sizes, which files share content), then
//! written. Planning first lets the generator hit the requested file count,
//! total size and duplicate share exactly, and lets callers know what to
//! expect after ingest (entries, unique contents) without hashing anything.
//!
//! The shape follows a real node_modules: packages (some scoped, some nested
//! in another package's node_modules) with `package.json`, `README.md`,
//! `LICENSE`, `index.js` and a heavy-tailed number of files in nested
//! `lib/`, `dist/`, `types/`… directories; mostly small files and a few
//! large bundles; `.bin/` symlinks to executable scripts and a few directory
//! symlinks. Duplicates come first from the handful of license texts shared
//! by many packages, then from files copied verbatim between packages.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// SplitMix64: tiny, fast and plenty good for reproducible test data.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A log-normal size: `median * e^(sigma * N(0,1))` (Box-Muller).
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        let n = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * n).exp()
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct TreeSpec {
    /// Regular files (symlinks come on top).
    pub files: usize,
    /// Total size of the regular files, in bytes.
    pub bytes: u64,
    /// Share of regular files whose content another file also has.
    pub dup_percent: u32,
    pub seed: u64,
}

/// What a file contains; equal bodies mean equal bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Body {
    /// The `package.json` of package N.
    Manifest(u32),
    /// License text `kind`, written for package `holder` or, if `None`, the
    /// generic text many packages share.
    License { kind: u8, holder: Option<u32> },
    /// Source-like text seeded by `id`; its size is the file's.
    Random { id: u32 },
}

#[derive(Clone, Debug)]
struct PlannedFile {
    /// Relative to the tree root, `/`-separated.
    rel: String,
    body: Body,
    size: u64,
    mode: u32,
}

#[derive(Clone, Debug)]
struct Package {
    /// As in package.json (`@scope/name` for scoped packages).
    name: String,
    /// Relative to the tree root.
    dir: String,
    version: String,
    bin: bool,
}

/// A planned tree.
pub struct Tree {
    files: Vec<PlannedFile>,
    /// (path, target), both as written.
    symlinks: Vec<(String, String)>,
    packages: Vec<Package>,
    seed: u64,
}

/// Average files per package in a real node_modules (70k files, 3k packages).
const FILES_PER_PACKAGE: f64 = 23.3;
/// Files every package has: package.json, README.md, LICENSE, index.js.
const BASE_FILES: usize = 4;
/// No generated file is smaller, so every content carries its unique header.
const MIN_SIZE: u64 = 48;

const SYLLABLES: &[&str] = &[
    "ba", "bel", "cha", "co", "da", "dex", "el", "fa", "glob", "ho", "is", "jest", "ka", "lo",
    "lint", "ma", "mo", "na", "no", "pa", "pro", "qu", "re", "ro", "sa", "se", "ta", "to", "ur",
    "va", "web", "xo", "ya", "zo", "ify", "dash", "pack", "util", "core", "type",
];
const DIRS: &[&str] = &[
    "lib",
    "dist",
    "src",
    "dist/esm",
    "dist/cjs",
    "lib/internal",
    "types",
    "lib/utils",
    "es",
    "dist/umd",
    "src/core",
    "lib/internal/streams",
    "locale",
    "test",
    "src/utils/helpers",
    "fp",
    "modules",
    "esm/internal",
];
/// (extension, weight, median size, sigma).
const EXTENSIONS: &[(&str, u32, f64, f64)] = &[
    ("js", 45, 2500.0, 1.2),
    ("d.ts", 15, 1500.0, 1.1),
    ("js.map", 10, 6000.0, 1.3),
    ("mjs", 8, 2500.0, 1.2),
    ("cjs", 5, 2500.0, 1.2),
    ("json", 5, 800.0, 1.0),
    ("md", 4, 2000.0, 1.0),
    ("ts", 6, 2000.0, 1.1),
    ("css", 2, 4000.0, 1.0),
];
/// Share of files that are large bundles or native addons (1-12 MB).
const LARGE_SHARE: f64 = 0.0006;

impl Tree {
    pub fn plan(spec: &TreeSpec) -> Tree {
        let mut rng = Prng::new(spec.seed);
        let packages = plan_packages(&mut rng, package_count(spec.files));
        let mut tree = Tree {
            files: Vec::with_capacity(spec.files),
            symlinks: Vec::new(),
            packages,
            seed: spec.seed,
        };
        let dup_budget = spec.files * spec.dup_percent as usize / 100;
        let license_dups = tree.plan_base_files(&mut rng, dup_budget);
        tree.plan_extra_files(&mut rng, spec.files);
        tree.plan_symlinks(&mut rng);
        tree.assign_duplicates(&mut rng, dup_budget.saturating_sub(license_dups));
        tree.scale_to(spec.bytes);
        tree
    }

    /// Regular files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    pub fn symlink_count(&self) -> usize {
        self.symlinks.len()
    }

    pub fn package_count(&self) -> usize {
        self.packages.len()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Distinct file contents (the blobs ingest must end up with).
    pub fn unique_contents(&self) -> usize {
        self.files
            .iter()
            .map(|f| f.body)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Directories below the root.
    pub fn dir_count(&self) -> usize {
        self.dirs().len()
    }

    /// Path of the first package's `package.json` (for the demo's `cat`).
    pub fn first_manifest(&self) -> String {
        format!("{}/package.json", self.packages[0].dir)
    }

    /// Writes the tree below `root` (created if missing), using every core.
    pub fn write(&self, root: &Path) -> Result<()> {
        fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
        for dir in self.dirs() {
            let path = root.join(&dir);
            fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || -> Result<()> {
                        let mut buf = vec![0u8; 1 << 20];
                        for f in self.files.iter().skip(t).step_by(threads) {
                            self.write_file(root, f, &mut buf)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("writer thread panicked"))
        })?;
        for (path, target) in &self.symlinks {
            let link = root.join(path);
            std::os::unix::fs::symlink(target, &link)
                .with_context(|| format!("cannot create {}", link.display()))?;
        }
        Ok(())
    }

    /// Every directory below the root, parents before children.
    fn dirs(&self) -> BTreeSet<String> {
        let files = self.files.iter().map(|f| f.rel.as_str());
        let links = self.symlinks.iter().map(|(p, _)| p.as_str());
        let mut dirs = BTreeSet::new();
        for path in files.chain(links) {
            let mut rest = path;
            while let Some((dir, _)) = rest.rsplit_once('/') {
                if !dirs.insert(dir.to_string()) {
                    break;
                }
                rest = dir;
            }
        }
        dirs
    }

    /// package.json, README.md, LICENSE and index.js of every package;
    /// returns how many LICENSE files reuse a shared text (duplicates).
    fn plan_base_files(&mut self, rng: &mut Prng, dup_budget: usize) -> usize {
        let mut shared_used = [false; LICENSES.len()];
        let mut dups = 0;
        for (i, pkg) in self.packages.iter().enumerate() {
            let i = i as u32;
            let kind = rng.below(LICENSES.len());
            // The first package with a license kind introduces its shared
            // text; later ones duplicate it while the budget lasts.
            let holder = if !shared_used[kind] {
                shared_used[kind] = true;
                None
            } else if dups < dup_budget {
                dups += 1;
                None
            } else {
                Some(i)
            };
            let license = Body::License {
                kind: kind as u8,
                holder,
            };
            let readme = rng.lognormal(3000.0, 1.0);
            let index = rng.lognormal(400.0, 0.8);
            let dir = &pkg.dir;
            let next = self.files.len() as u32;
            self.files.extend([
                fixed(format!("{dir}/package.json"), Body::Manifest(i)),
                fixed(format!("{dir}/LICENSE"), license),
                random(format!("{dir}/README.md"), next + 2, readme, 0o644),
                random(format!("{dir}/index.js"), next + 3, index, 0o644),
            ]);
        }
        dups
    }

    /// Spreads the remaining files over the packages, heavy-tailed: most
    /// packages have a handful, a few have hundreds.
    fn plan_extra_files(&mut self, rng: &mut Prng, total: usize) {
        let extra = total.saturating_sub(self.files.len());
        let weights: Vec<f64> = self
            .packages
            .iter()
            .map(|_| (1.0 - rng.unit()).powf(-1.0 / 1.1).min(300.0))
            .collect();
        let sum: f64 = weights.iter().sum();
        let mut counts: Vec<usize> = weights
            .iter()
            .map(|w| (extra as f64 * w / sum) as usize)
            .collect();
        let mut left = extra - counts.iter().sum::<usize>();
        let mut i = rng.below(counts.len());
        while left > 0 {
            counts[i] += 1;
            left -= 1;
            i = (i + 1) % counts.len();
        }
        for (p, n) in counts.into_iter().enumerate() {
            self.plan_package_files(rng, p, n);
        }
    }

    fn plan_package_files(&mut self, rng: &mut Prng, p: usize, n: usize) {
        // A CLI needs a file to live in; without one the package has none.
        self.packages[p].bin &= n > 0;
        let pkg = self.packages[p].clone();
        let dir_count = (1 + n / 12).min(DIRS.len());
        let start = rng.below(DIRS.len());
        let dirs: Vec<&str> = (0..dir_count)
            .map(|k| DIRS[(start + k) % DIRS.len()])
            .collect();
        let mut names = HashSet::new();
        for k in 0..n {
            let id = self.files.len() as u32;
            if k == 0 && pkg.bin {
                let size = rng.lognormal(1500.0, 0.8);
                let rel = format!("{}/bin/cli.js", pkg.dir);
                self.files.push(random(rel, id, size, 0o755));
                continue;
            }
            let (ext, median, sigma) = pick_extension(rng);
            let size = if rng.chance(LARGE_SHARE) {
                (1 + rng.below(12)) as f64 * 1e6
            } else {
                rng.lognormal(median, sigma)
            };
            let dir = rng.pick(&dirs);
            let mut stem = word(rng);
            if !names.insert(format!("{dir}/{stem}.{ext}")) {
                stem = format!("{stem}-{k}");
            }
            let rel = format!("{}/{dir}/{stem}.{ext}", pkg.dir);
            self.files.push(random(rel, id, size, 0o644));
        }
    }

    /// `.bin/` links to every top-level package's CLI, and a few directory
    /// aliases (as npm aliases and workspaces make).
    fn plan_symlinks(&mut self, rng: &mut Prng) {
        for pkg in &self.packages {
            if pkg.bin {
                let cmd = pkg.name.rsplit('/').next().unwrap_or(&pkg.name);
                let target = format!("../{}/bin/cli.js", pkg.dir);
                self.symlinks.push((format!(".bin/{cmd}"), target));
            }
        }
        let top: Vec<&Package> = self
            .packages
            .iter()
            .filter(|p| !p.dir.contains('/'))
            .collect();
        for _ in 0..(self.packages.len() / 300).max(1) {
            let pkg = rng.pick(&top);
            let alias = format!("alias-{}", pkg.name);
            if !self.symlinks.iter().any(|(p, _)| *p == alias) {
                self.symlinks.push((alias, pkg.dir.clone()));
            }
        }
    }

    /// Turns `n` random source files into verbatim copies of other ones.
    fn assign_duplicates(&mut self, rng: &mut Prng, n: usize) {
        let mut candidates: Vec<usize> = (0..self.files.len())
            .filter(|&i| matches!(self.files[i].body, Body::Random { .. }))
            .collect();
        let n = n.min(candidates.len().saturating_sub(1));
        // Partial Fisher-Yates: the first n become copies, the rest sources.
        for i in 0..n {
            let j = i + rng.below(candidates.len() - i);
            candidates.swap(i, j);
        }
        let (copies, sources) = candidates.split_at(n);
        for &c in copies {
            let src = &self.files[*rng.pick(sources)];
            let (body, size) = (src.body, src.size);
            self.files[c].body = body;
            self.files[c].size = size;
        }
    }

    /// Scales the source-like files so that all files total `bytes`.
    fn scale_to(&mut self, bytes: u64) {
        let (mut fixed_bytes, mut random_bytes) = (0u64, 0u64);
        for i in 0..self.files.len() {
            match self.files[i].body {
                Body::Random { .. } => random_bytes += self.files[i].size,
                body => {
                    let size = self.fixed_text(body).len() as u64;
                    self.files[i].size = size;
                    fixed_bytes += size;
                }
            }
        }
        let factor = bytes.saturating_sub(fixed_bytes) as f64 / random_bytes.max(1) as f64;
        for f in &mut self.files {
            if matches!(f.body, Body::Random { .. }) {
                // Copies share their source's nominal size, so they stay equal.
                f.size = ((f.size as f64 * factor) as u64).max(MIN_SIZE);
            }
        }
    }

    fn write_file(&self, root: &Path, f: &PlannedFile, buf: &mut [u8]) -> Result<()> {
        let path = root.join(&f.rel);
        let mut write = || -> std::io::Result<()> {
            let mut file = File::create(&path)?;
            match f.body {
                Body::Random { id } => write_random(&mut file, self.seed, id, f.size, buf)?,
                body => file.write_all(self.fixed_text(body).as_bytes())?,
            }
            // Explicit, so the tree does not depend on the caller's umask.
            file.set_permissions(fs::Permissions::from_mode(f.mode))
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }

    /// The text of a package.json or LICENSE.
    fn fixed_text(&self, body: Body) -> String {
        match body {
            Body::Manifest(i) => manifest_json(&self.packages[i as usize]),
            Body::License { kind, holder } => {
                let holder = holder.map_or("the contributors", |i| {
                    self.packages[i as usize].name.as_str()
                });
                license_text(kind, holder)
            }
            Body::Random { .. } => unreachable!("random bodies are streamed"),
        }
    }
}

/// Packages for `files` files: about one per 23, at most one per 4.
fn package_count(files: usize) -> usize {
    let n = (files as f64 / FILES_PER_PACKAGE).round() as usize;
    n.clamp(1, (files / BASE_FILES).max(1))
}

fn plan_packages(rng: &mut Prng, n: usize) -> Vec<Package> {
    let scopes: Vec<String> = (0..(n / 60).max(2)).map(|_| word(rng)).collect();
    let mut taken = HashSet::new();
    let mut out: Vec<Package> = Vec::with_capacity(n);
    for _ in 0..n {
        let mut bare = word(rng);
        if rng.chance(0.4) {
            bare = format!("{bare}-{}", word(rng));
        }
        while !taken.insert(bare.clone()) {
            bare = format!("{bare}{}", rng.below(10));
        }
        let scope = rng.chance(0.12).then(|| rng.pick(&scopes).clone());
        let name = match &scope {
            Some(s) => format!("@{s}/{bare}"),
            None => bare,
        };
        // About one package in ten is a second version nested in another
        // package's node_modules.
        let top: Vec<&Package> = out.iter().filter(|p| !p.dir.contains('/')).collect();
        let dir = if !top.is_empty() && rng.chance(0.1) {
            format!("{}/node_modules/{name}", rng.pick(&top).dir)
        } else {
            name.clone()
        };
        let version = format!("{}.{}.{}", rng.below(8), rng.below(30), rng.below(20));
        let bin = !dir.contains("/node_modules/") && rng.chance(0.15);
        out.push(Package {
            name,
            dir,
            version,
            bin,
        });
    }
    out
}

fn word(rng: &mut Prng) -> String {
    let n = 2 + rng.below(2);
    (0..n).map(|_| *rng.pick(SYLLABLES)).collect()
}

fn pick_extension(rng: &mut Prng) -> (&'static str, f64, f64) {
    let total: u32 = EXTENSIONS.iter().map(|e| e.1).sum();
    let mut r = rng.below(total as usize) as u32;
    for &(ext, weight, median, sigma) in EXTENSIONS {
        if r < weight {
            return (ext, median, sigma);
        }
        r -= weight;
    }
    unreachable!("weights sum to total")
}

/// A file whose size comes from its text (set in `scale_to`).
fn fixed(rel: String, body: Body) -> PlannedFile {
    PlannedFile {
        rel,
        body,
        size: 0,
        mode: 0o644,
    }
}

fn random(rel: String, id: u32, size: f64, mode: u32) -> PlannedFile {
    PlannedFile {
        rel,
        body: Body::Random { id },
        size: size as u64,
        mode,
    }
}

/// 64 symbols, so one random byte picks one with a mask.
const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n";

/// Writes `size` bytes of source-like text: a header naming the content (so
/// distinct contents never collide), then letters seeded by it.
fn write_random(
    out: &mut File,
    seed: u64,
    id: u32,
    size: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let header = format!("/* vrift bench content {id:08x} */\n");
    let mut left = size as usize;
    let head = &header.as_bytes()[..header.len().min(left)];
    out.write_all(head)?;
    left -= head.len();
    let mut rng = Prng::new(seed ^ u64::from(id).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    while left > 0 {
        let n = left.min(buf.len());
        let chunk = &mut buf[..n];
        for bytes in chunk.chunks_mut(8) {
            let r = rng.next_u64().to_le_bytes();
            for (d, s) in bytes.iter_mut().zip(r) {
                *d = ALPHABET[(s & 63) as usize];
            }
        }
        out.write_all(chunk)?;
        left -= chunk.len();
    }
    Ok(())
}

fn manifest_json(pkg: &Package) -> String {
    let bin = if pkg.bin {
        let cmd = pkg.name.rsplit('/').next().unwrap_or(&pkg.name);
        format!("\n  \"bin\": {{ \"{cmd}\": \"bin/cli.js\" }},")
    } else {
        String::new()
    };
    format!(
        "{{\n  \"name\": \"{}\",\n  \"version\": \"{}\",\n  \"description\": \"Generated by cargo xtask for vrift\",\n  \"main\": \"index.js\",{bin}\n  \"license\": \"MIT\"\n}}\n",
        pkg.name, pkg.version
    )
}

const LICENSES: &[&str] = &[
    "MIT License\n\nCopyright (c) {holder}\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction, including without limitation the rights\nto use, copy, modify, merge, publish, distribute, sublicense, and/or sell\ncopies of the Software, and to permit persons to whom the Software is\nfurnished to do so, subject to the following conditions:\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.\n",
    "ISC License\n\nCopyright (c) {holder}\n\nPermission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee is hereby granted, provided that the above\ncopyright notice and this permission notice appear in all copies.\n",
    "Copyright {holder}\n\nLicensed under the Apache License, Version 2.0 (the \"License\");\nyou may not use this file except in compliance with the License.\nYou may obtain a copy of the License at\n\n    http://www.apache.org/licenses/LICENSE-2.0\n",
    "BSD 2-Clause License\n\nCopyright (c) {holder}\nAll rights reserved.\n\nRedistribution and use in source and binary forms, with or without\nmodification, are permitted provided that the conditions are met.\n",
    "BSD 3-Clause License\n\nCopyright (c) {holder}\n\nNeither the name of the copyright holder nor the names of its contributors\nmay be used to endorse or promote products derived from this software.\n",
    "Zero-Clause BSD\n\nCopyright (C) {holder}\n\nPermission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee is hereby granted.\n",
];

fn license_text(kind: u8, holder: &str) -> String {
    LICENSES[kind as usize].replace("{holder}", holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(files: usize, dup_percent: u32) -> TreeSpec {
        TreeSpec {
            files,
            bytes: 5_000_000,
            dup_percent,
            seed: 7,
        }
    }

    #[test]
    fn plan_hits_the_requested_shape() {
        let tree = Tree::plan(&spec(3000, 30));
        assert_eq!(tree.file_count(), 3000);
        let dups = tree.file_count() - tree.unique_contents();
        assert_eq!(dups, 900, "30% of the files duplicate another");
        let bytes = tree.bytes() as f64;
        assert!((bytes / 5e6 - 1.0).abs() < 0.01, "total {bytes}");
        assert!(tree.symlink_count() > 0);
        let paths: HashSet<&str> = tree.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(paths.len(), tree.file_count(), "paths are unique");
    }

    #[test]
    fn no_duplicates_when_none_are_asked_for() {
        let tree = Tree::plan(&spec(1000, 0));
        assert_eq!(tree.unique_contents(), tree.file_count());
    }

    #[test]
    fn plans_are_deterministic() {
        let (a, b) = (Tree::plan(&spec(500, 30)), Tree::plan(&spec(500, 30)));
        let key = |t: &Tree| -> Vec<(String, u64)> {
            t.files.iter().map(|f| (f.rel.clone(), f.size)).collect()
        };
        assert_eq!(key(&a), key(&b));
    }
}
