//! `FetchBlob`: a reader found a blob missing (a snapshot pulled without
//! `--eager`) and asks the daemon to fetch it from the project's remotes.
//!
//! The event loop never waits for a transfer: a request is handed to a
//! pool of at most 16 threads (`pool::MAX_FETCHES`, a remote's transfer
//! concurrency), the asking connection is parked (not polled) until its
//! blob is in, and the loop keeps serving everyone else. Openers of one blob share one transfer: the first one queues it,
//! the others only join its list of waiters. A finished transfer is posted
//! back through a pipe the loop polls; every waiter gets the same answer.
//!
//! Invariant: a blob enters the store only verified (its BLAKE3 is its
//! name, its size at most what the asking entry records) and flushed; a
//! failure is EIO and one line, in the reply and in the daemon's log.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use vrift_format::ContentHash;

use crate::cas::Cas;
use crate::project::Project;

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
    waiting: HashMap<ContentHash, Vec<Waiter>>,
    wake_r: OwnedFd,
    wake_w: std::sync::Arc<OwnedFd>,
    done_tx: std::sync::mpsc::Sender<Done>,
    done_rx: std::sync::mpsc::Receiver<Done>,
    #[cfg(feature = "remote")]
    pool: Option<pool::Pool>,
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
        Ok(Fetcher {
            project,
            cas,
            waiting: HashMap::new(),
            wake_r,
            wake_w: std::sync::Arc::new(wake_w),
            done_tx,
            done_rx,
            #[cfg(feature = "remote")]
            pool: None,
        })
    }

    /// The fd the event loop polls: readable when a transfer finished.
    pub fn wake_fd(&self) -> RawFd {
        self.wake_r.as_raw_fd()
    }

    /// Whether transfers are queued or running.
    pub fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// `FetchBlob` of `hex` (64 hex digits) by `who`; `size` as the entry
    /// records it ([`vrift_format::proto::SIZE_UNKNOWN`]: unknown).
    pub fn request(&mut self, who: Waiter, hex: &[u8], size: u64) -> Start {
        let Some(hash) = ContentHash::from_hex(hex).filter(|_| hex.len() == 64) else {
            return Start::Answer(libc::EINVAL, Vec::new());
        };
        if self.cas.has_blob(&hash) {
            return Start::Answer(0, Vec::new());
        }
        if let Some(w) = self.waiting.get_mut(&hash) {
            w.push(who);
            return Start::Wait;
        }
        let size = (size != vrift_format::proto::SIZE_UNKNOWN).then_some(size);
        match self.queue(hash, size) {
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

    #[cfg(feature = "remote")]
    fn queue(&mut self, hash: ContentHash, size: Option<u64>) -> Result<(), String> {
        // Read per request: a remote added since the daemon started counts.
        let urls = crate::remote::ondemand::candidate_urls(&self.project)
            .map_err(|e| format!("cannot fetch blob {hash}: {e:#}"))?;
        let pool = self.pool.get_or_insert_with(|| {
            pool::Pool::new(self.cas.clone(), self.done_tx.clone(), self.wake_w.clone())
        });
        pool.push(pool::Job { hash, size, urls })
    }

    #[cfg(not(feature = "remote"))]
    fn queue(&mut self, hash: ContentHash, _size: Option<u64>) -> Result<(), String> {
        let _ = (&self.project, &self.done_tx, &self.wake_w);
        Err(format!(
            "blob {hash} is missing from the store, and this vrift was built without remotes (run `vrift fsck`)"
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
            #[cfg(feature = "remote")]
            if let Some(p) = &mut self.pool {
                p.done();
            }
            let (errno, why) = match result {
                Ok(()) => (0, Vec::new()),
                Err(why) => {
                    eprintln!("vrift daemon: {why}");
                    (libc::EIO, why.into_bytes())
                }
            };
            for w in self.waiting.remove(&hash).unwrap_or_default() {
                out.push((w, errno, why.clone()));
            }
        }
        out
    }
}

#[cfg(feature = "remote")]
mod pool {
    use std::collections::VecDeque;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::mpsc::Sender;
    use std::sync::{Arc, Condvar, Mutex};

    use vrift_format::ContentHash;

    use super::Done;
    use crate::cas::Cas;
    use crate::remote::ondemand::RemoteCache;

    /// Transfers in flight at once (each on its own thread).
    pub const MAX_FETCHES: usize = crate::remote::store::CONCURRENCY;

    pub struct Job {
        pub hash: ContentHash,
        pub size: Option<u64>,
        pub urls: Vec<String>,
    }

    type Queue = Arc<(Mutex<VecDeque<Job>>, Condvar)>;

    /// Threads started as transfers need them, up to [`MAX_FETCHES`]; they
    /// share one cache of open remotes.
    pub struct Pool {
        queue: Queue,
        threads: usize,
        busy: usize,
        cas: Cas,
        remotes: Arc<RemoteCache>,
        done: Sender<Done>,
        wake: Arc<OwnedFd>,
    }

    impl Pool {
        pub fn new(cas: Cas, done: Sender<Done>, wake: Arc<OwnedFd>) -> Pool {
            Pool {
                queue: Arc::new((Mutex::new(VecDeque::new()), Condvar::new())),
                threads: 0,
                busy: 0,
                cas,
                remotes: Arc::new(RemoteCache::default()),
                done,
                wake,
            }
        }

        pub fn push(&mut self, job: Job) -> Result<(), String> {
            if self.busy >= self.threads && self.threads < MAX_FETCHES {
                self.spawn();
            }
            if self.threads == 0 {
                return Err(format!(
                    "cannot fetch blob {}: no thread could be started",
                    job.hash
                ));
            }
            self.busy += 1;
            let (q, cv) = &*self.queue;
            q.lock().unwrap_or_else(|e| e.into_inner()).push_back(job);
            cv.notify_one();
            Ok(())
        }

        /// One transfer has been answered.
        pub fn done(&mut self) {
            self.busy = self.busy.saturating_sub(1);
        }

        fn spawn(&mut self) {
            let queue = self.queue.clone();
            let cas = self.cas.clone();
            let remotes = self.remotes.clone();
            let done = self.done.clone();
            let wake = self.wake.clone();
            let started = std::thread::Builder::new()
                .name("vrift-fetch".into())
                .spawn(move || loop {
                    let job = {
                        let (q, cv) = &*queue;
                        let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if let Some(j) = q.pop_front() {
                                break j;
                            }
                            q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
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
