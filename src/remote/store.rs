//! One remote: an object store (S3, HTTP/WebDAV, a directory) reached
//! through `object_store`, with the layout vrift keeps on it.
//!
//! ```text
//! <prefix>/blobs/ab/abcd…            a blob, named by the BLAKE3 of its bytes
//!                                    (snapshot bundles are blobs too)
//! <prefix>/refs/<project>/<snapshot> 64 hex digits + "\n": the bundle's hash,
//!                                    then "Sig: NAME:BASE64\n" lines (see sign.rs)
//! <prefix>/profiles/<project>/<snapshot>
//!                                    the paths lazy reads fetched on the pushing
//!                                    machine, a prefetch hint (crate::profile)
//! ```
//!
//! Nothing read from a remote is trusted: every blob is hashed on the way in
//! and refused unless the hash is its name. Refs are the only mutable
//! objects; they are plain PUTs, so concurrent writers of one ref race and
//! the last writer wins (S3 implementations differ on conditional writes).
//!
//! object_store is async; a small tokio runtime (2 workers) lives inside
//! each `Remote` and nothing outside this module sees it.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use vrift_format::{ContentHash, HASH_HEX_LEN};

use super::sign::PublicKey;
use crate::cas::Cas;

/// Transfers and existence checks in flight at once.
pub const CONCURRENCY: usize = 16;
/// Blobs from this size on are uploaded in parts (where the store can).
const MULTIPART_MIN: u64 = 64 << 20;
/// Part sizes: S3's smallest (all but the last part), and the largest used.
const PART_MIN: u64 = 5 << 20;
const PART_MAX: u64 = 16 << 20;
/// Parts of one blob in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// From how many blobs an existence check lists fan-out directories
/// instead of asking for each blob (`VRIFT_REMOTE_LIST_MIN`).
fn list_min() -> usize {
    std::env::var(crate::env_vars::VRIFT_REMOTE_LIST_MIN)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1024)
}

pub struct Remote {
    /// The URL as configured, for messages.
    pub url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    /// Whether listing is cheap and always available (S3, directories; a
    /// WebDAV listing needs PROPFIND, which plain HTTP caches lack).
    lists: bool,
    /// Whether large blobs go up in parts (S3, directories: object_store's
    /// HTTP store has no multipart upload).
    multipart: bool,
    rt: tokio::runtime::Runtime,
    /// The keys a ref pulled from here must be signed by (none: refs are
    /// not checked), from the remote's `trusted-keys`.
    pub trusted: Vec<PublicKey>,
}

/// A ref as read: the bundle it names and its signatures (`NAME:BASE64`).
#[derive(Debug, PartialEq, Eq)]
pub struct Ref {
    pub bundle: ContentHash,
    pub sigs: Vec<String>,
}

/// Called after each finished transfer with its size.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Few, quick retries: a dead server should fail a command in seconds, and
/// a rerun resumes where it stopped.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

/// Checks that `url` names a remote vrift can open, without touching it.
pub fn check_url(url: &str) -> Result<()> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("remote URL {url:?} has no scheme (s3://, http(s)://, file://)");
    };
    match scheme {
        "s3" if rest.split('/').next().is_some_and(|b| !b.is_empty()) => Ok(()),
        "s3" => bail!("remote URL {url:?} names no bucket"),
        "http" | "https" if !rest.is_empty() => Ok(()),
        "file" if rest.starts_with('/') => Ok(()),
        "file" => bail!("remote URL {url:?}: file:// needs an absolute path (file:///dir)"),
        other => bail!("remote URL {url:?}: unsupported scheme {other:?} (s3, http, https, file)"),
    }
}

impl Remote {
    /// Opens the remote at `url`: `s3://bucket[/prefix]`, `http(s)://…`, or
    /// `file:///absolute/dir` (created if missing).
    pub fn open(url: &str) -> Result<Remote> {
        // reqwest is built without a default TLS provider (the default one
        // builds aws-lc, a large C library): install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        check_url(url)?;
        let (scheme, rest) = url.split_once("://").expect("checked");
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                // Endpoint, region, credentials, AWS_ALLOW_HTTP: the standard
                // AWS_* variables, read by from_env; then what the AWS
                // shared files (~/.aws/credentials, ~/.aws/config) give
                // for what the variables do not set.
                let mut b = object_store::aws::AmazonS3Builder::from_env();
                let shared = super::aws::shared();
                if let (Some(id), Some(secret)) = (shared.access_key_id, shared.secret_access_key) {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                    if let Some(token) = shared.session_token {
                        b = b.with_token(token);
                    }
                }
                if let Some(region) = shared.region {
                    b = b.with_region(region);
                }
                if let Some(endpoint) = shared.endpoint {
                    // A plain-HTTP endpoint written in the config is what
                    // its user asked for.
                    if endpoint.starts_with("http://") {
                        b = b.with_allow_http(true);
                    }
                    b = b.with_endpoint(endpoint);
                }
                let s3 = b
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .build()
                    .with_context(|| format!("cannot set up the S3 remote {url}"))?;
                (Arc::new(s3), prefix)
            }
            "http" | "https" => {
                let http = object_store::http::HttpBuilder::new()
                    .with_url(url.trim_end_matches('/'))
                    // The user wrote http://: plain HTTP is what they asked for.
                    .with_client_options(ClientOptions::new().with_allow_http(scheme == "http"))
                    .with_retry(retry())
                    .build()
                    .with_context(|| format!("cannot set up the HTTP remote {url}"))?;
                (Arc::new(http), "")
            }
            "file" => {
                let dir = PathBuf::from(rest);
                fs::create_dir_all(&dir).with_context(|| {
                    format!("cannot create the remote directory {}", dir.display())
                })?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .with_context(|| {
                        format!("cannot open the remote directory {}", dir.display())
                    })?;
                (Arc::new(local), "")
            }
            other => {
                bail!("remote URL {url:?}: unsupported scheme {other:?} (s3, http, https, file)")
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vrift-remote")
            .enable_all()
            .build()
            .context("cannot start the remote transfer runtime")?;
        Ok(Remote {
            url: url.to_string(),
            lists: scheme != "http" && scheme != "https",
            multipart: scheme != "http" && scheme != "https",
            store,
            prefix: prefix
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            rt,
            trusted: Vec::new(),
        })
    }

    fn key(&self, parts: &[&str]) -> ObjPath {
        ObjPath::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(parts.iter().copied()),
        )
    }

    /// `blobs/ab/abcd…`, fanned out like the local store.
    pub fn blob_key(&self, hash: &ContentHash) -> ObjPath {
        let hex = hash.to_string();
        self.key(&["blobs", &hex[..2], &hex])
    }

    pub fn ref_key(&self, project: &str, snapshot: &str) -> ObjPath {
        self.key(&["refs", project, snapshot])
    }

    /// `profiles/<project>/<snapshot>`: the read profile pushed with a
    /// snapshot (see `crate::profile`).
    pub fn profile_key(&self, project: &str, snapshot: &str) -> ObjPath {
        self.key(&["profiles", project, snapshot])
    }

    /// Where an object is, for messages: the remote's URL and the key.
    pub fn describe(&self, key: &ObjPath) -> String {
        format!(
            "{}/{}",
            self.url.trim_end_matches('/'),
            key_tail(key, self.prefix.len())
        )
    }

    /// Which of `hashes` the remote lacks: for many blobs on a store that
    /// lists cheaply, a listing of the fan-out directories they fall in (one
    /// request per 1000 names instead of one per blob); otherwise HEAD
    /// requests. `CONCURRENCY` requests at once either way.
    pub fn missing(&self, hashes: &[ContentHash]) -> Result<Vec<bool>> {
        if self.lists && !hashes.is_empty() && hashes.len() >= list_min() {
            let present = self.listed_sizes(hashes)?;
            return Ok(hashes.iter().map(|h| !present.contains_key(h)).collect());
        }
        self.rt.block_on(async {
            futures::stream::iter(hashes.iter().map(|h| {
                let key = self.blob_key(h);
                async move {
                    match self.store.head(&key).await {
                        Ok(_) => Ok(false),
                        Err(object_store::Error::NotFound { .. }) => Ok(true),
                        Err(e) => Err(fail(format!("cannot check {}", self.describe(&key)), e)),
                    }
                }
            }))
            .buffered(CONCURRENCY)
            .try_collect()
            .await
        })
    }

    /// Which of `blobs` (hash, size) the remote holds as an object of that
    /// name *and* size: what `vrift gc --offload` may delete locally. A
    /// listing of their fan-out directories where listing is cheap, else a
    /// HEAD each; `CONCURRENCY` requests at once. (The bytes themselves are
    /// checked when they come back: a remote is never trusted for content.)
    pub fn holds(&self, blobs: &[(ContentHash, u64)]) -> Result<Vec<bool>> {
        if self.lists && blobs.len() >= list_min() {
            let hashes: Vec<ContentHash> = blobs.iter().map(|b| b.0).collect();
            let present = self.listed_sizes(&hashes)?;
            return Ok(blobs
                .iter()
                .map(|(h, size)| present.get(h) == Some(size))
                .collect());
        }
        self.rt.block_on(async {
            futures::stream::iter(blobs.iter().map(|&(h, size)| {
                let key = self.blob_key(&h);
                async move {
                    match self.store.head(&key).await {
                        Ok(meta) => Ok(meta.size == size),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(fail(format!("cannot check {}", self.describe(&key)), e)),
                    }
                }
            }))
            .buffered(CONCURRENCY)
            .try_collect()
            .await
        })
    }

    /// The blobs present in the fan-out directories `hashes` fall in, with
    /// their sizes.
    fn listed_sizes(&self, hashes: &[ContentHash]) -> Result<HashMap<ContentHash, u64>> {
        let fans: BTreeSet<String> = hashes
            .iter()
            .map(|h| h.to_string()[..2].to_string())
            .collect();
        let lists: Vec<Vec<(ContentHash, u64)>> = self.rt.block_on(async {
            futures::stream::iter(fans.iter().map(|fan| {
                let prefix = self.key(&["blobs", fan]);
                async move {
                    let metas: Vec<_> = self
                        .store
                        .list(Some(&prefix))
                        .try_collect()
                        .await
                        .map_err(|e| fail(format!("cannot list {}", self.describe(&prefix)), e))?;
                    Ok::<_, anyhow::Error>(
                        metas
                            .iter()
                            .filter_map(|m| {
                                let name = m.location.filename()?;
                                Some((ContentHash::from_hex(name.as_bytes())?, m.size))
                            })
                            .collect(),
                    )
                }
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
        })?;
        Ok(lists.into_iter().flatten().collect())
    }

    /// Uploads the local blobs `hashes`, `CONCURRENCY` at once.
    pub fn upload(&self, cas: &Cas, hashes: &[ContentHash], progress: Progress<'_>) -> Result<()> {
        self.rt.block_on(async {
            futures::stream::iter(hashes.iter().map(|h| async move {
                let path = cas.blob_path(h);
                let bytes = map_blob(&path)
                    .with_context(|| format!("cannot read blob {h} ({})", path.display()))?;
                // The local store is trusted less than a hash: a blob that
                // rotted on disk must not reach the team.
                let actual = ContentHash(*blake3::hash(&bytes).as_bytes());
                if actual != *h {
                    bail!(
                        "local blob {} is corrupt (its content hashes to {actual}); run `vrift fsck`",
                        path.display()
                    );
                }
                let n = bytes.len() as u64;
                let key = self.blob_key(h);
                match self.part_size(n) {
                    Some(part) => self.put_in_parts(&key, bytes, part).await?,
                    None => self.put(&key, bytes).await?,
                }
                progress(n);
                Ok(())
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
        })
    }

    /// The part size a blob of `len` bytes is uploaded in, if in parts:
    /// from [`MULTIPART_MIN`] bytes (or `VRIFT_REMOTE_MULTIPART_MIN`) on a
    /// store that has multipart uploads. A single PUT is limited (5 GiB on
    /// S3) and a failure retries the whole of it; parts are retried alone.
    fn part_size(&self, len: u64) -> Option<usize> {
        let min = std::env::var(crate::env_vars::VRIFT_REMOTE_MULTIPART_MIN)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(MULTIPART_MIN);
        (self.multipart && len >= min).then(|| min.clamp(PART_MIN, PART_MAX) as usize)
    }

    /// Uploads `bytes` to `key` in parts of `part` bytes, a few at once; the
    /// object appears whole when the last part is in, or not at all (an
    /// interrupted upload is aborted; the next push uploads it again).
    async fn put_in_parts(&self, key: &ObjPath, bytes: Bytes, part: usize) -> Result<()> {
        let what = || format!("cannot upload {}", self.describe(key));
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| fail(what(), e))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, part);
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = w.abort().await;
                return Err(fail(what(), e));
            }
            let take = rest.len().min(part);
            w.put(rest.split_to(take));
        }
        w.finish().await.map_err(|e| fail(what(), e))?;
        Ok(())
    }

    async fn put(&self, key: &ObjPath, bytes: Bytes) -> Result<()> {
        self.store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(|e| fail(format!("cannot upload {}", self.describe(key)), e))?;
        Ok(())
    }

    /// Writes a small object (a bundle, a ref).
    pub fn put_object(&self, key: &ObjPath, bytes: Vec<u8>) -> Result<()> {
        self.rt.block_on(self.put(key, Bytes::from(bytes)))
    }

    /// Reads a small object; `None` when it does not exist.
    pub fn get_object(&self, key: &ObjPath) -> Result<Option<Bytes>> {
        self.rt.block_on(async {
            match self.store.get(key).await {
                Ok(r) => Ok(Some(r.bytes().await.map_err(|e| {
                    fail(format!("cannot download {}", self.describe(key)), e)
                })?)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(fail(format!("cannot download {}", self.describe(key)), e)),
            }
        })
    }

    /// Reads blob `hash` into memory, verified (for bundles).
    pub fn get_blob(&self, hash: &ContentHash) -> Result<Bytes> {
        let key = self.blob_key(hash);
        let bytes = self
            .get_object(&key)?
            .ok_or_else(|| anyhow!("{} does not exist", self.describe(&key)))?;
        let actual = ContentHash(*blake3::hash(&bytes).as_bytes());
        if actual != *hash {
            bail!("{}", self.corrupt_message(&key, &actual));
        }
        Ok(bytes)
    }

    fn corrupt_message(&self, key: &ObjPath, actual: &ContentHash) -> String {
        format!(
            "refused {}: its content hashes to {actual}, not its name (corrupt or tampered remote object)",
            self.describe(key)
        )
    }

    /// Downloads the blobs `hashes` into the local store, `CONCURRENCY` at
    /// once, each streamed into the store's tmp/ while hashed, and adopted
    /// only if the hash is its name. Stops at the first failure (blobs
    /// already adopted are correct and stay).
    pub fn download(
        &self,
        cas: &Cas,
        hashes: &[ContentHash],
        progress: Progress<'_>,
    ) -> Result<()> {
        self.rt.block_on(async {
            futures::stream::iter(hashes.iter().map(|h| async move {
                let n = self.download_one(cas, h).await?;
                progress(n);
                Ok::<(), anyhow::Error>(())
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
        })
    }

    async fn download_one(&self, cas: &Cas, hash: &ContentHash) -> Result<u64> {
        match self.fetch_async(cas, hash, None).await? {
            Some(n) => Ok(n),
            None => bail!(
                "cannot download {}: it does not exist",
                self.describe(&self.blob_key(hash))
            ),
        }
    }

    /// Fetches blob `hash` into the local store, verified: `Ok(None)` when
    /// the remote does not have it. `max`: the size the caller expects; a
    /// longer object is refused as soon as it is (a remote cannot fill the
    /// disk through a small file).
    ///
    /// Not flushed: a flush (`fdatasync`) per blob was most of a fetch from
    /// a server on the same host (~1.1 ms per small blob on ext4 here,
    /// however many threads flush at once: the journal commits one at a
    /// time), and lazy reads fetch blobs one by one. Entries reference the
    /// blob already, so a power loss may leave it empty or cut short under
    /// its name: every reader compares an opened blob's size with its
    /// entry's and has it quarantined and fetched again
    /// ([`super::ondemand::quarantine_damaged`]; the library through the
    /// daemon's `FetchBlob` with `FETCH_DAMAGED`). A cut-short blob costs a
    /// refetch, never wrong bytes (ext4's ordered mode commits a file's
    /// size after its data).
    pub fn fetch(&self, cas: &Cas, hash: &ContentHash, max: Option<u64>) -> Result<Option<u64>> {
        self.rt.block_on(self.fetch_async(cas, hash, max))
    }

    /// Streams blob `hash` into the store's tmp/ while hashing it, and adopts
    /// it only if the hash is its name (not flushed: see [`Remote::fetch`];
    /// a pull flushes the store once, `syncfs`, before a manifest
    /// references what it fetched).
    async fn fetch_async(
        &self,
        cas: &Cas,
        hash: &ContentHash,
        max: Option<u64>,
    ) -> Result<Option<u64>> {
        let key = self.blob_key(hash);
        let what = || format!("cannot download {}", self.describe(&key));
        let mut stream = match self.store.get(&key).await {
            Ok(r) => r.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(fail(what(), e)),
        };
        let tmp = cas.tmp_path("pull");
        // Removes the temp file however this ends: when another download
        // fails, this future is dropped mid-way and never reaches a cleanup.
        let _guard = RemoveOnDrop(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut hasher = blake3::Hasher::new();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(what(), e))?;
            n += chunk.len() as u64;
            if max.is_some_and(|m| n > m) {
                bail!(
                    "refused {}: longer than the {} bytes its entry records (corrupt or tampered remote object)",
                    self.describe(&key),
                    max.unwrap_or_default()
                );
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        // No fsync per blob (an eager pull of 20k small blobs took 77 s with
        // one, 18 s without): see `fetch`.
        crate::profile::mark_unread(&file);
        drop(file);
        let actual = ContentHash(*hasher.finalize().as_bytes());
        if actual != *hash {
            bail!("{}", self.corrupt_message(&key, &actual));
        }
        cas.adopt_tmp(&tmp, hash)?;
        Ok(Some(n))
    }

    /// Reads ref `refs/<project>/<snapshot>`: the bundle's hash and the
    /// signatures it carries (not checked here).
    pub fn read_ref(&self, project: &str, snapshot: &str) -> Result<Option<Ref>> {
        let key = self.ref_key(project, snapshot);
        let Some(bytes) = self.get_object(&key)? else {
            return Ok(None);
        };
        let bad = || {
            anyhow!(
                "{} is not a ref (64 hex digits expected)",
                self.describe(&key)
            )
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let bundle = ContentHash::from_hex(first.as_bytes())
            .filter(|_| first.len() == HASH_HEX_LEN)
            .ok_or_else(bad)?;
        let mut sigs = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let sig = line.strip_prefix("Sig: ").ok_or_else(bad)?;
            sigs.push(sig.trim().to_string());
        }
        Ok(Some(Ref { bundle, sigs }))
    }

    /// Points ref `refs/<project>/<snapshot>` at `bundle`, with signature
    /// `sig` (`NAME:BASE64`) if any (last writer wins).
    pub fn write_ref(
        &self,
        project: &str,
        snapshot: &str,
        bundle: &ContentHash,
        sig: Option<&str>,
    ) -> Result<()> {
        let key = self.ref_key(project, snapshot);
        let mut text = format!("{bundle}\n");
        if let Some(sig) = sig {
            text.push_str(&format!("Sig: {sig}\n"));
        }
        self.put_object(&key, text.into_bytes())
    }

    /// The snapshots `project` has refs for.
    pub fn list_refs(&self, project: &str) -> Result<Vec<String>> {
        let prefix = self.key(&["refs", project]);
        // One level (WebDAV's PROPFIND with Depth 1: nginx refuses infinity).
        let listing = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
            .map_err(|e| fail(format!("cannot list {}", self.describe(&prefix)), e))?;
        let mut names: Vec<String> = listing
            .objects
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// A blob's bytes without reading it into memory: 16 uploads of large
/// blobs in flight would otherwise hold them all. Blobs are immutable
/// (mode 0444, replaced only by rename), so the mapping stays valid.
fn map_blob(path: &std::path::Path) -> std::io::Result<Bytes> {
    let file = fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the file is a blob, never written in place (see above).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

/// Removes a file when dropped (nothing if it was renamed away meanwhile).
struct RemoveOnDrop<'a>(&'a std::path::Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// An object store error as one line after `what`: servers put whole HTML
/// pages in their error bodies, which object_store passes on.
fn fail(what: String, e: object_store::Error) -> anyhow::Error {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let cut = ["<html", "<!doctype"]
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
        .unwrap_or(text.len());
    let joined = text[..cut].split_whitespace().collect::<Vec<_>>().join(" ");
    let line = joined.trim_end_matches([':', ' ']);
    if line.len() > 400 {
        let mut end = 400;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        return anyhow!("{what}: {}…", &line[..end]);
    }
    anyhow!("{what}: {line}")
}

fn key_tail(key: &ObjPath, skip: usize) -> String {
    key.parts()
        .skip(skip)
        .map(|p| p.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("/")
}
