//! Signed refs: ed25519, in the key format of Nix's binary caches.
//!
//! A key pair is made once per user or CI secret (`vrift remote key
//! generate`): the secret key in `$XDG_CONFIG_HOME/vrift/signing-key` (else
//! `~/.config/vrift/signing-key`, or the file `VRIFT_SIGNING_KEY` names),
//! mode 0600, as `NAME:BASE64(seed ‖ public key)`; the public key as
//! `NAME:BASE64(public key)`, printed for pasting into a remote's
//! `trusted-keys`. A push with a key signs each ref it writes; a pull
//! from a remote with `trusted-keys` refuses a ref without a valid
//! signature by one of them.
//!
//! What is signed is the ref's meaning, not its bytes:
//! `vrift-ref-1;<project>;<snapshot>;<bundle hash>`, so a signed ref
//! cannot be replayed under another project's or snapshot's name. Everything
//! else follows by hash: the bundle is verified against the signed hash,
//! and every blob against the hash the bundle gives. A store writer can
//! still put back an older ref of the same name that was signed then
//! (signatures carry no time, as in Nix): rotate keys to retire old refs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::SecureRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use vrift_format::ContentHash;

use crate::env_vars;

/// The user's secret key: the file `VRIFT_SIGNING_KEY` names, else
/// `signing-key` beside the user's config file.
pub fn secret_key_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_vars::VRIFT_SIGNING_KEY).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let config = super::config::user_config_path()?;
    Ok(config.with_file_name("signing-key"))
}

/// A secret signing key and its name.
pub struct SecretKey {
    pub name: String,
    pair: Ed25519KeyPair,
}

/// A public key a remote trusts, and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    key: Vec<u8>,
}

fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        bail!("invalid key name {name:?}: use letters, digits, '.', '_' and '-' (e.g. ci.example.com-1)");
    }
    Ok(())
}

/// `NAME:BASE64` → (name, bytes).
fn split_key(text: &str, what: &str) -> Result<(String, Vec<u8>)> {
    let text = text.trim();
    let (name, b64) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("{what} is not NAME:BASE64"))?;
    check_key_name(name).with_context(|| format!("in {what}"))?;
    let bytes = B64
        .decode(b64)
        .map_err(|e| anyhow!("{what}: invalid base64 ({e})"))?;
    Ok((name.to_string(), bytes))
}

impl SecretKey {
    /// Parses `NAME:BASE64(seed ‖ public)` (what [`SecretKey::to_text`] wrote,
    /// and what `nix-store --generate-binary-cache-key` writes).
    pub fn parse(text: &str, what: &str) -> Result<SecretKey> {
        let (name, bytes) = split_key(text, what)?;
        if bytes.len() != 64 {
            bail!(
                "{what}: an ed25519 secret key is 64 bytes, this one {}",
                bytes.len()
            );
        }
        let pair = Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..])
            .map_err(|e| anyhow!("{what}: not an ed25519 key pair ({e})"))?;
        Ok(SecretKey { name, pair })
    }

    /// The secret key file's content. Holds the seed: write it 0600.
    fn to_text(&self, seed: &[u8; 32]) -> String {
        let mut bytes = seed.to_vec();
        bytes.extend_from_slice(self.pair.public_key().as_ref());
        format!("{}:{}\n", self.name, B64.encode(bytes))
    }

    /// The public key, as a remote's `trusted-keys` lists it.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// `NAME:BASE64(signature)` of `msg`.
    pub fn sign(&self, msg: &[u8]) -> String {
        format!("{}:{}", self.name, B64.encode(self.pair.sign(msg).as_ref()))
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey> {
        let what = format!("public key {:?}", text.trim());
        let (name, key) = split_key(text, &what)?;
        if key.len() != 32 {
            bail!(
                "{what}: an ed25519 public key is 32 bytes, this one {}",
                key.len()
            );
        }
        Ok(PublicKey { name, key })
    }

    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.key)
            .verify(msg, sig)
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, B64.encode(&self.key))
    }
}

/// Makes a key pair named `name` and writes its secret half to `path`
/// (0600, never over an existing file unless `force`).
pub fn generate(path: &Path, name: &str, force: bool) -> Result<SecretKey> {
    if !force && path.exists() {
        bail!(
            "{} exists already; keep it, or pass --force to replace it (refs signed with it then need its public key to verify)",
            path.display()
        );
    }
    check_key_name(name)?;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| anyhow!("the system's random source failed"))?;
    let key = SecretKey {
        name: name.to_string(),
        pair: Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| anyhow!("cannot make a key pair: {e}"))?,
    };
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key.to_text(&seed).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(key)
}

/// The user's signing key, if there is one. A key file others can read is
/// refused (like ssh does).
pub fn load_secret() -> Result<Option<SecretKey>> {
    let path = secret_key_path()?;
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mode = fs::metadata(&path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "the signing key {} is readable by others (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    SecretKey::parse(&text, &format!("the signing key {}", path.display())).map(Some)
}

/// What a ref's signature covers.
pub fn message(project: &str, snapshot: &str, bundle: &ContentHash) -> Vec<u8> {
    format!("vrift-ref-1;{project};{snapshot};{bundle}").into_bytes()
}

/// Checks the signatures `sigs` (`NAME:BASE64` each) of `msg` against
/// `trusted`: Ok when one of them is valid and by a trusted key, or when
/// nothing is trusted (signatures are then not looked at). Err: why not,
/// in a few words.
pub fn verify(trusted: &[PublicKey], msg: &[u8], sigs: &[String]) -> Result<(), String> {
    if trusted.is_empty() {
        return Ok(());
    }
    if sigs.is_empty() {
        return Err("it is not signed".into());
    }
    let mut unknown = Vec::new();
    for sig in sigs {
        let Some((name, b64)) = sig.split_once(':') else {
            continue;
        };
        let Some(key) = trusted.iter().find(|k| k.name == name) else {
            unknown.push(name.to_string());
            continue;
        };
        match B64.decode(b64) {
            Ok(bytes) if key.verifies(msg, &bytes) => return Ok(()),
            _ => {
                return Err(format!(
                    "its signature by {name} does not verify (a tampered ref, or another key of that name)"
                ))
            }
        }
    }
    Err(if unknown.is_empty() {
        "it carries no readable signature".to_string()
    } else {
        format!(
            "it is signed by {} only, not by a trusted key",
            unknown.join(", ")
        )
    })
}
