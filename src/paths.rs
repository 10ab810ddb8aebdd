//! Path resolution for the CLI: the same domain test the shim applies
//! (DESIGN.md §2), done with the real filesystem.

use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

/// Makes `path` absolute and canonical, except that its last component is not
/// followed if it is a symlink (lstat semantics), and components that do not
/// exist on disk are resolved lexically (a phantom file has no disk path).
pub fn resolve_lexically_from_existing(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(path)
    };
    resolve(&abs)
}

fn resolve(abs: &Path) -> Result<PathBuf> {
    let last = abs.components().next_back();
    match last {
        None | Some(Component::RootDir) => Ok(PathBuf::from("/")),
        Some(Component::CurDir) | Some(Component::ParentDir) => {
            let parent = abs.parent().unwrap_or(Path::new("/"));
            let base = resolve_dir(parent)?;
            Ok(if matches!(last, Some(Component::ParentDir)) {
                base.parent().map(Path::to_path_buf).unwrap_or(base)
            } else {
                base
            })
        }
        Some(Component::Normal(name)) => {
            let parent = abs.parent().unwrap_or(Path::new("/"));
            Ok(resolve_dir(parent)?.join(name))
        }
        Some(Component::Prefix(_)) => unreachable!("no path prefixes on unix"),
    }
}

/// Resolves a path used as a directory: fully canonical where it exists.
fn resolve_dir(dir: &Path) -> Result<PathBuf> {
    match fs::canonicalize(dir) {
        Ok(p) => Ok(p),
        Err(_) => {
            // Does not exist (yet): resolve its parent, then apply the last part.
            let resolved = resolve(dir)?;
            Ok(resolved)
        }
    }
}

/// Joins rift path components.
pub fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
        v.extend_from_slice(parent);
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}

/// The parent of a rift path (`b""` for top-level names).
pub fn parent_rel(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// The last component of a rift path.
pub fn name_rel(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// A rift path as an `OsStr`.
pub fn os(path: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(path)
}

/// A rift path for messages (lossy, non-UTF-8 bytes escaped).
pub fn display(path: &[u8]) -> String {
    path.utf8_chunks()
        .map(|c| {
            let mut s = c.valid().to_string();
            for b in c.invalid() {
                s.push_str(&format!("\\x{b:02x}"));
            }
            s
        })
        .collect()
}

/// The last extension of file name `name` (`index.cjs` → `cjs`, `add.d.ts`
/// → `ts`), empty for none: a reader of one file of a kind reads others of
/// that kind (a resolver follows `.cjs` requires, a compiler `.h` includes),
/// rarely the rest of its directory (types, maps, docs).
pub fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&c| c == b'.') {
        Some(0) | None => b"",
        Some(i) => &name[i + 1..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_is_the_last_one() {
        assert_eq!(extension(b"index.cjs"), b"cjs");
        assert_eq!(extension(b"add.d.ts"), b"ts");
        assert_eq!(extension(b"Makefile"), b"");
        assert_eq!(extension(b".bashrc"), b"");
        assert_eq!(extension(b"trailing."), b"");
    }

    #[test]
    fn rel_helpers() {
        assert_eq!(join_rel(b"", b"a"), b"a");
        assert_eq!(join_rel(b"a/b", b"c"), b"a/b/c");
        assert_eq!(parent_rel(b"a/b/c"), b"a/b");
        assert_eq!(parent_rel(b"a"), b"");
        assert_eq!(name_rel(b"a/b/c"), b"c");
        assert_eq!(display(b"a\xffb"), "a\\xffb");
    }

    #[test]
    fn resolves_missing_tails_and_dotdot() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(root.join("d")).unwrap();
        std::os::unix::fs::symlink(root.join("d"), root.join("link")).unwrap();
        assert_eq!(
            resolve(&root.join("link/x/../y")).unwrap(),
            root.join("d/y")
        );
        assert_eq!(
            resolve(&root.join("d/missing/file")).unwrap(),
            root.join("d/missing/file")
        );
        // The last component is not followed.
        assert_eq!(resolve(&root.join("link")).unwrap(), root.join("link"));
    }
}
