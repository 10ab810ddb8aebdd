//! `FetchBlob`: a reader found a blob missing (a snapshot pulled without
//! `--eager`) and asks the daemon to fetch it from the project's remotes.
//!
//! The event loop never waits for a transfer: a request is handed to a
//! pool of at most 16 threads (`pool::MAX_FETCHES`, a remote's transfer
//! concurrency), the asking connection is parked (not polled) until its
//! blob is in, and the loop keeps serving everyone else. Openers of one
//! blob share one transfer: the first one queues it, the others only join
//! its list of waiters. A finished transfer is posted back through a pipe
//! the loop polls; every waiter gets the same answer.
//!
//! Prefetch: one reader's fetch says where the next reads go. When a
//! request names the view path it is for, the daemon also queues the blobs
//! of that path's neighbours ([`Rift::neighbours`](super::rift::Rift::neighbours)):
//! at the first such read in a directory, of one kind (extension), the
//! files of the same name in the sibling directories; at the second, the
//! other files of its kind in its directory ([`Fetcher::ring_to_fetch`]),
//! bounded in count and size.
//! Reads that run one after another (a resolver walking
//! `node_modules/*/package.json`) then find most blobs in, or in flight,
//! instead of paying a round trip each. Prefetches never delay a request:
//! they queue behind every request, take at most
//! `pool::PREFETCH_THREADS` of the threads (the rest stay for requests),
//! and a request for a blob queued for prefetch is moved to the front. A
//! prefetch that fails is dropped quietly (the read that needs the blob,
//! if any, fetches it and reports).
//!
//! Invariant: a blob enters the store only verified (its BLAKE3 is its
//! name, its size at most what the asking entry records); a failure is EIO
//! and one line, in the reply and in the daemon's log. It is not flushed
//! (see [`crate::remote::store::Remote::fetch`]): one a power loss cut
//! short is found by its reader's size check, which asks again with
//! `FETCH_DAMAGED`; the blob is then quarantined and fetched again.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use vrift_format::ContentHash;

use crate::cas::Cas;
use crate::project::Project;

/// Most blobs one fetch queues for prefetch.
pub const PREFETCH_MAX: usize = 1024;
/// Largest blob a read profile makes the daemon prefetch (it was read).
pub const PROFILE_MAX_SIZE: u64 = 64 << 20;
/// Largest blob prefetched (larger ones wait for their reader).
pub const PREFETCH_MAX_SIZE: u64 = 1 << 20;
/// Directories whose misses are counted are remembered up to this many
/// (then forgotten all at once).
const EXPANDED_MAX: usize = 1 << 16;

/// A parked connection: its fd and its identity (fds are reused).
pub type Waiter = (RawFd, u64);

/// What a request gets at once: an answer, or wait for [`Fetcher::finished`].
pub enum Start {
    Answer(i32, Vec<u8>),
    Wait,
}

type Done = (ContentHash, Result<(), String>);

pub struct Fetcher {
    project: Project,
    cas: Cas,
    /// Requested blobs (queued or in transfer) and who waits for each.
    waiting: HashMap<ContentHash, Vec<Waiter>>,
    /// Blobs queued or in transfer for prefetch only.
    prefetching: HashSet<ContentHash>,
    /// Reads that waited for a fetch, per directory (rift path) and kind
    /// (file extension), up to 2 (see [`Fetcher::ring_to_fetch`]).
    misses: HashMap<(Vec<u8>, Vec<u8>), u8>,
    /// Whether to fetch ahead at all ([`crate::env_vars::VRIFT_FETCH_AHEAD`]).
    ahead: bool,
    /// The files whose blobs were fetched (for a reader or ahead of one),
    /// for the next machine's read profile (`crate::profile`).
    log: crate::profile::Log,
    wake_r: OwnedFd,
    wake_w: std::sync::Arc<OwnedFd>,
    done_tx: std::sync::mpsc::Sender<Done>,
    done_rx: std::sync::mpsc::Receiver<Done>,
    #[cfg(feature = "remote")]
    pool: Option<pool::Pool>,
    /// The project's remotes, read again when a config file changes.
    #[cfg(feature = "remote")]
    urls: crate::remote::ondemand::CandidateUrls,
}

impl Fetcher {
    pub fn new(project: Project, cas: Cas) -> std::io::Result<Fetcher> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds into our array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: two fresh fds, owned from here on.
        let (wake_r, wake_w) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let log = crate::profile::Log::new(&project);
        Ok(Fetcher {
            project,
            cas,
            waiting: HashMap::new(),
            prefetching: HashSet::new(),
            misses: HashMap::new(),
            ahead: std::env::var_os(crate::env_vars::VRIFT_FETCH_AHEAD).is_none_or(|v| v != "0"),
            log,
            wake_r,
            wake_w: std::sync::Arc::new(wake_w),
            done_tx,
            done_rx,
            #[cfg(feature = "remote")]
            pool: None,
            #[cfg(feature = "remote")]
            urls: Default::default(),
        })
    }

    /// The fd the event loop polls: readable when a transfer finished.
    pub fn wake_fd(&self) -> RawFd {
        self.wake_r.as_raw_fd()
    }

    /// Whether requested transfers are queued or running (prefetches alone
    /// keep nobody waiting).
    pub fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// `FetchBlob` of `hex` (64 hex digits) by `who`; `size` as the entry
    /// records it ([`vrift_format::proto::SIZE_UNKNOWN`]: unknown); `flags`:
    /// [`vrift_format::proto::FETCH_DAMAGED`] when the store's copy has
    /// another size (checked here again: the asker may be late).
    pub fn request(&mut self, who: Waiter, hex: &[u8], size: u64, flags: u64) -> Start {
        let Some(hash) = ContentHash::from_hex(hex).filter(|_| hex.len() == 64) else {
            return Start::Answer(libc::EINVAL, Vec::new());
        };
        if let Some(w) = self.waiting.get_mut(&hash) {
            w.push(who);
            return Start::Wait;
        }
        if flags & vrift_format::proto::FETCH_VERIFY != 0
            && size != vrift_format::proto::SIZE_UNKNOWN
        {
            return self.verify(hash, size, who);
        }
        let damaged = flags & vrift_format::proto::FETCH_DAMAGED != 0
            && size != vrift_format::proto::SIZE_UNKNOWN;
        if damaged {
            if let Err(why) = self.set_aside(&hash, size) {
                eprintln!("vrift daemon: {why}");
                return Start::Answer(libc::EIO, why.into_bytes());
            }
        }
        if self.cas.has_blob(&hash) {
            return Start::Answer(0, Vec::new());
        }
        let size = (size != vrift_format::proto::SIZE_UNKNOWN).then_some(size);
        // Queued for prefetch already: queued again in front (the pool
        // transfers a blob once, and the first answer is everyone's).
        match self.queue(&[(hash, size)], false) {
            Ok(()) => {
                self.waiting.insert(hash, vec![who]);
                Start::Wait
            }
            Err(why) => {
                eprintln!("vrift daemon: {why}");
                Start::Answer(libc::EIO, why.into_bytes())
            }
        }
    }

    /// `FETCH_VERIFY`: hashes blob `hash` on a thread of its own (a large
    /// blob must not stall other clients) and marks it verified if it is its
    /// name; the asker waits for the answer like for a transfer.
    fn verify(&mut self, hash: ContentHash, size: u64, who: Waiter) -> Start {
        let cas = self.cas.clone();
        let done = self.done_tx.clone();
        let wake = self.wake_w.clone();
        let started = std::thread::Builder::new()
            .name("vrift-verify".into())
            .spawn(move || {
                let result = cas
                    .open_blob_verified(&hash, size, false)
                    .map(drop)
                    .map_err(|e| format!("{e:#}"));
                let _ = done.send((hash, result));
                // SAFETY: one byte from a local buffer into our pipe.
                unsafe { libc::write(wake.as_raw_fd(), b"x".as_ptr() as *const libc::c_void, 1) };
            });
        match started {
            Ok(_) => {
                self.waiting.insert(hash, vec![who]);
                Start::Wait
            }
            Err(e) => Start::Answer(
                libc::EIO,
                format!("cannot verify blob {hash}: {e}").into_bytes(),
            ),
        }
    }

    /// Moves blob `hash` to the quarantine if its size is not `size` and a
    /// remote can give it again (the request then fetches it); without a
    /// remote it stays, and the reader gets EIO and why.
    #[cfg(feature = "remote")]
    fn set_aside(&mut self, hash: &ContentHash, size: u64) -> Result<(), String> {
        let found = std::fs::symlink_metadata(self.cas.blob_path(hash)).map(|m| m.len());
        let Some(len) = found.ok().filter(|&len| len != size) else {
            return Ok(()); // replaced meanwhile (or gone: fetched as missing)
        };
        let damaged =
            || format!("blob {hash} in the store is damaged ({len} bytes, its record says {size})");
        let urls = self
            .urls
            .get(&self.project)
            .map_err(|e| format!("{}, and it cannot be fetched again: {e:#}", damaged()))?;
        if urls.is_empty() {
            return Err(format!(
                "{} and no remote is configured to fetch it again; run `vrift fsck`",
                damaged()
            ));
        }
        crate::remote::ondemand::quarantine_damaged(&self.cas, hash, size)
            .map(drop)
            .map_err(|e| format!("{}: {e:#}", damaged()))
    }

    #[cfg(not(feature = "remote"))]
    fn set_aside(&mut self, hash: &ContentHash, size: u64) -> Result<(), String> {
        match std::fs::symlink_metadata(self.cas.blob_path(hash)) {
            Ok(m) if m.len() != size => Err(format!(
                "blob {hash} in the store is damaged ({} bytes, its record says {size}); run `vrift fsck`",
                m.len()
            )),
            _ => Ok(()),
        }
    }

    /// Notes that rift path `rel` needed blob `hex` fetched (its reader
    /// waits for it).
    pub fn record(&mut self, hex: &[u8], rel: &[u8]) {
        if let Some(hash) = ContentHash::from_hex(hex).filter(|_| hex.len() == 64) {
            self.log.record(crate::profile::ASKED, [(&hash, rel)]);
        }
    }

    /// The restored snapshot's read profile, taken at the first fetch
    /// after the restore (one failed open per fetch otherwise): its paths
    /// are fetched ahead, in order. Nothing when fetching ahead is off.
    pub fn take_profile(&mut self) -> Vec<Vec<u8>> {
        if !cfg!(feature = "remote") || !self.ahead {
            return Vec::new();
        }
        crate::profile::take_pending(&self.project)
    }

    /// Which neighbours of rift path `rel` (a fetch's view path) to fetch
    /// ahead now, if any: at the first read of its directory and kind that
    /// waited for a fetch, its cousins; at the second, its siblings; then
    /// none. One read of a kind in a directory says little about the
    /// others (`eslint/lib/rules/index.js` beside 290 rules loaded on
    /// demand; a package's main file): fetching all of them ahead was most
    /// of the blobs fetched and never read (bench remote: 718 of 1,728).
    /// A second one says the directory is being walked (rxjs's operators,
    /// date-fns): one round trip later, the rest come ahead.
    pub fn ring_to_fetch(&mut self, rel: &[u8]) -> Option<super::rift::Ring> {
        if !cfg!(feature = "remote") || !self.ahead || rel.is_empty() {
            return None;
        }
        if self.misses.len() >= EXPANDED_MAX {
            self.misses.clear();
        }
        let name = rel.rsplit(|&c| c == b'/').next().unwrap_or_default();
        let key = (
            crate::paths::parent_rel(rel).to_vec(),
            crate::paths::extension(name).to_vec(),
        );
        let seen = self.misses.entry(key).or_insert(0);
        *seen = seen.saturating_add(1).min(3);
        match *seen {
            1 => Some(super::rift::Ring::Cousins),
            2 => Some(super::rift::Ring::Siblings),
            _ => None,
        }
    }

    /// Queues the blobs of `files` for prefetch, behind every request;
    /// those in the store, requested or queued already are skipped. The
    /// files queued are logged (their reads are told by the blobs' atime
    /// at the next push: `crate::profile`).
    pub fn prefetch(&mut self, files: Vec<super::rift::Wanted>) {
        let mut seen = HashSet::new();
        let todo: Vec<super::rift::Wanted> = files
            .into_iter()
            .filter(|w| {
                seen.insert(w.hash)
                    && !self.waiting.contains_key(&w.hash)
                    && !self.prefetching.contains(&w.hash)
                    && !self.cas.has_blob(&w.hash)
            })
            .collect();
        if todo.is_empty() {
            return;
        }
        let jobs: Vec<(ContentHash, Option<u64>)> =
            todo.iter().map(|w| (w.hash, Some(w.size))).collect();
        // Quietly: the reads that need these blobs report for themselves.
        if self.queue(&jobs, true).is_ok() {
            self.prefetching.extend(jobs.iter().map(|(h, _)| *h));
            self.log.record(
                crate::profile::AHEAD,
                todo.iter().map(|w| (&w.hash, w.path.as_slice())),
            );
        }
    }

    #[cfg(feature = "remote")]
    fn queue(
        &mut self,
        blobs: &[(ContentHash, Option<u64>)],
        prefetch: bool,
    ) -> Result<(), String> {
        // A remote added since the daemon started counts.
        let urls = self
            .urls
            .get(&self.project)
            .map_err(|e| format!("cannot fetch blob {}: {e:#}", blobs[0].0))?;
        let pool = self.pool.get_or_insert_with(|| {
            pool::Pool::new(self.cas.clone(), self.done_tx.clone(), self.wake_w.clone())
        });
        pool.push(
            blobs.iter().map(|&(hash, size)| pool::Job {
                hash,
                size,
                urls: urls.clone(),
            }),
            prefetch,
        )
    }

    #[cfg(not(feature = "remote"))]
    fn queue(
        &mut self,
        blobs: &[(ContentHash, Option<u64>)],
        _prefetch: bool,
    ) -> Result<(), String> {
        let _ = (&self.project, &self.done_tx, &self.wake_w);
        Err(format!(
            "blob {} is missing from the store, and this vrift was built without remotes (run `vrift fsck`)",
            blobs[0].0
        ))
    }

    /// The answers of the transfers that finished: (waiter, errno, why).
    pub fn finished(&mut self) -> Vec<(Waiter, i32, Vec<u8>)> {
        let mut sink = [0u8; 64];
        // SAFETY: draining our own non-blocking pipe into a local buffer.
        while unsafe {
            libc::read(
                self.wake_r.as_raw_fd(),
                sink.as_mut_ptr() as *mut libc::c_void,
                sink.len(),
            )
        } > 0
        {}
        let mut out = Vec::new();
        while let Ok((hash, result)) = self.done_rx.try_recv() {
            self.prefetching.remove(&hash);
            let Some(waiters) = self.waiting.remove(&hash) else {
                continue; // a prefetch nobody asked for (yet)
            };
            let (errno, why) = match result {
                Ok(()) => (0, Vec::new()),
                Err(why) => {
                    eprintln!("vrift daemon: {why}");
                    (libc::EIO, why.into_bytes())
                }
            };
            for w in waiters {
                out.push((w, errno, why.clone()));
            }
        }
        out
    }
}

#[cfg(feature = "remote")]
mod pool {
    use std::collections::{HashSet, VecDeque};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::mpsc::Sender;
    use std::sync::{Arc, Condvar, Mutex};

    use vrift_format::ContentHash;

    use super::Done;
    use crate::cas::Cas;
    use crate::remote::ondemand::RemoteCache;

    /// Transfers in flight at once (each on its own thread).
    pub const MAX_FETCHES: usize = crate::remote::store::CONCURRENCY;
    /// Of which prefetches at most: the rest are kept for requests.
    pub const PREFETCH_THREADS: usize = MAX_FETCHES * 3 / 4;

    pub struct Job {
        pub hash: ContentHash,
        pub size: Option<u64>,
        pub urls: Arc<[String]>,
    }

    #[derive(Default)]
    struct Queues {
        requests: VecDeque<Job>,
        prefetches: VecDeque<Job>,
        /// Blobs in transfer: a second job for one is dropped (the first
        /// one's answer serves both).
        claimed: HashSet<ContentHash>,
        prefetching: usize,
        idle: usize,
    }

    impl Queues {
        /// The next job a free thread takes: requests first.
        fn next(&mut self) -> Option<(Job, bool)> {
            while let Some(j) = self.requests.pop_front() {
                if self.claimed.insert(j.hash) {
                    return Some((j, false));
                }
            }
            while self.prefetching < PREFETCH_THREADS {
                let j = self.prefetches.pop_front()?;
                if self.claimed.insert(j.hash) {
                    self.prefetching += 1;
                    return Some((j, true));
                }
            }
            None
        }
    }

    type Shared = Arc<(Mutex<Queues>, Condvar)>;

    /// Threads started as transfers need them, up to [`MAX_FETCHES`]; they
    /// share one cache of open remotes.
    pub struct Pool {
        shared: Shared,
        threads: usize,
        cas: Cas,
        remotes: Arc<RemoteCache>,
        done: Sender<Done>,
        wake: Arc<OwnedFd>,
    }

    impl Pool {
        pub fn new(cas: Cas, done: Sender<Done>, wake: Arc<OwnedFd>) -> Pool {
            Pool {
                shared: Arc::new((Mutex::new(Queues::default()), Condvar::new())),
                threads: 0,
                cas,
                remotes: Arc::new(RemoteCache::default()),
                done,
                wake,
            }
        }

        /// Queues `jobs`: requests in front of every prefetch.
        pub fn push(
            &mut self,
            jobs: impl Iterator<Item = Job>,
            prefetch: bool,
        ) -> Result<(), String> {
            let shared = self.shared.clone();
            let (q, cv) = &*shared;
            let (queued, idle) = {
                let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                let before = q.requests.len() + q.prefetches.len();
                if prefetch {
                    q.prefetches.extend(jobs);
                } else {
                    q.requests.extend(jobs);
                }
                (q.requests.len() + q.prefetches.len() - before, q.idle)
            };
            let want = if prefetch {
                queued.min(PREFETCH_THREADS)
            } else {
                queued
            };
            for _ in idle..want {
                if self.threads >= MAX_FETCHES {
                    break;
                }
                self.spawn();
            }
            if self.threads == 0 {
                return Err("cannot fetch blobs: no thread could be started".into());
            }
            cv.notify_all();
            Ok(())
        }

        fn spawn(&mut self) {
            let shared = self.shared.clone();
            let cas = self.cas.clone();
            let remotes = self.remotes.clone();
            let done = self.done.clone();
            let wake = self.wake.clone();
            let started = std::thread::Builder::new()
                .name("vrift-fetch".into())
                .spawn(move || loop {
                    let (q, cv) = &*shared;
                    let (job, prefetch) = {
                        let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if let Some(next) = q.next() {
                                break next;
                            }
                            q.idle += 1;
                            q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
                            q.idle -= 1;
                        }
                    };
                    let result = if cas.has_blob(&job.hash) {
                        Ok(())
                    } else {
                        remotes
                            .fetch(&job.urls, &cas, &job.hash, job.size)
                            .map(drop)
                            .map_err(|e| format!("{e:#}"))
                    };
                    {
                        let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                        q.claimed.remove(&job.hash);
                        if prefetch {
                            q.prefetching -= 1;
                        }
                    }
                    if done.send((job.hash, result)).is_err() {
                        return;
                    }
                    // SAFETY: one byte from a local buffer into our pipe.
                    unsafe {
                        libc::write(wake.as_raw_fd(), b"x".as_ptr() as *const libc::c_void, 1)
                    };
                });
            if started.is_ok() {
                self.threads += 1;
            }
        }
    }
}
