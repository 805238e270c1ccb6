//! What the server holds: resources, faults and counters.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;

use crate::Fault;

/// `Last-Modified` of every first version: Wed, 21 Oct 2015 07:28:00 GMT.
const BASE_LAST_MODIFIED: u64 = 1_445_412_480;

/// Bodies up to this size are hashed whole for their ETag.
const HASH_WHOLE: usize = 1 << 20;

/// Bytes hashed from each end of a larger body.
const HASH_ENDS: usize = 256 << 10;

/// Evenly spaced samples of 1 KiB hashed from the middle of a larger body.
const HASH_SAMPLES: usize = 512;

/// One version of the content at a path.
#[derive(Debug)]
pub(crate) struct Resource {
    pub(crate) body: Bytes,
    pub(crate) etag: String,
    pub(crate) last_modified: String,
    pub(crate) generation: u64,
    pub(crate) fingerprint: u64,
}

impl Resource {
    /// Version `generation` of `body`: the ETag is its [`fingerprint`] in
    /// hex, plus `-generation` for a path's later versions, so that a path
    /// never shows the same ETag for different bytes; Last-Modified moves a
    /// minute per generation.
    pub(crate) fn new(body: Bytes, generation: u64) -> Self {
        let fingerprint = fingerprint(&body);
        let etag = match generation {
            0 => format!("\"{fingerprint:016x}\""),
            n => format!("\"{fingerprint:016x}-{n}\""),
        };
        let modified = UNIX_EPOCH + Duration::from_secs(BASE_LAST_MODIFIED + generation * 60);
        Self {
            body,
            etag,
            last_modified: httpdate::fmt_http_date(modified),
            generation,
            fingerprint,
        }
    }
}

/// A 64-bit content hash: SipHash of the whole body up to 1 MiB; of its
/// length, both 256 KiB ends and 512 spread samples of 1 KiB above that, so
/// that registering a GiB stays cheap in debug builds. Bytes that differ
/// only between samples can share a fingerprint, but never an ETag at one
/// path: later versions carry their generation ([`Content::install`]).
/// Stable for one toolchain.
fn fingerprint(body: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write_usize(body.len());
    if body.len() <= HASH_WHOLE {
        hasher.write(body);
    } else {
        hasher.write(&body[..HASH_ENDS]);
        hasher.write(&body[body.len() - HASH_ENDS..]);
        let step = (body.len() - 1024) / HASH_SAMPLES;
        for i in 0..HASH_SAMPLES {
            hasher.write(&body[i * step..i * step + 1024]);
        }
    }
    hasher.finish()
}

/// Request counters of the whole server or of one path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) gets: AtomicU64,
    pub(crate) heads: AtomicU64,
    pub(crate) ranged_gets: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
}

impl Counters {
    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes_served.fetch_add(n, Ordering::Relaxed);
    }

    fn reset(&self) {
        for counter in [&self.gets, &self.heads, &self.ranged_gets, &self.bytes_served] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    fn path_stats(&self) -> PathStats {
        PathStats {
            gets: self.gets.load(Ordering::Relaxed),
            heads: self.heads.load(Ordering::Relaxed),
            ranged_gets: self.ranged_gets.load(Ordering::Relaxed),
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
        }
    }
}

/// Counters of the whole server since start or [`TestServer::reset_stats`](crate::TestServer::reset_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// GET requests received (faulted ones included).
    pub gets: u64,
    /// HEAD requests received (faulted ones included).
    pub heads: u64,
    /// Body bytes actually handed to the connection.
    pub bytes_served: u64,
    /// The most GET bodies being sent at once.
    pub peak_bodies: u64,
    /// TCP connections accepted (before any TLS handshake).
    pub connections: u64,
}

/// GET bodies being sent now, and the most at once.
#[derive(Debug, Default)]
pub(crate) struct Bodies {
    now: AtomicU64,
    peak: AtomicU64,
}

/// One GET body being sent: counted in [`Bodies`] until dropped (sent
/// whole, cut, or abandoned by the client).
#[derive(Debug)]
pub(crate) struct BodyInFlight(Arc<Bodies>);

impl BodyInFlight {
    pub(crate) fn new(bodies: &Arc<Bodies>) -> Self {
        let now = bodies.now.fetch_add(1, Ordering::SeqCst) + 1;
        bodies.peak.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(bodies))
    }
}

impl Drop for BodyInFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counters of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathStats {
    /// GET requests received (faulted ones included).
    pub gets: u64,
    /// HEAD requests received (faulted ones included).
    pub heads: u64,
    /// GET requests that carried a `Range` header.
    pub ranged_gets: u64,
    /// Body bytes actually handed to the connection.
    pub bytes_served: u64,
}

/// Content and faults, changed together under one lock.
#[derive(Debug, Default)]
pub(crate) struct Content {
    pub(crate) resources: HashMap<String, Arc<Resource>>,
    pub(crate) faults: HashMap<String, Vec<Fault>>,
    /// The last generation each path has held, even if since replaced.
    generations: HashMap<String, u64>,
}

impl Content {
    /// `add`: registers `body` unless the path holds exactly these bytes.
    pub(crate) fn add(&mut self, path: &str, body: Bytes) {
        if self.resources.get(path).is_some_and(|current| current.body == body) {
            return;
        }
        self.install(path, body);
    }

    /// Puts `body` at `path` as a new version: generation 0 (the plain
    /// content-hash ETag) the first time, one more than any before after.
    pub(crate) fn install(&mut self, path: &str, body: Bytes) {
        let generation = self.generations.get(path).map_or(0, |last| last + 1);
        self.generations.insert(path.to_owned(), generation);
        self.resources
            .insert(path.to_owned(), Arc::new(Resource::new(body, generation)));
    }
}

/// Everything the server and its handle share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    content: Mutex<Content>,
    total: Arc<Counters>,
    per_path: Mutex<HashMap<String, Arc<Counters>>>,
    pub(crate) bodies: Arc<Bodies>,
    connections: AtomicU64,
    /// The headers of each path's last request.
    last_headers: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// When each request arrived, in order.
    arrivals: Mutex<Vec<Instant>>,
}

/// Locks `mutex`, ignoring poisoning: a panicking test must not wedge the server.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn content(&self) -> MutexGuard<'_, Content> {
        lock(&self.content)
    }

    /// Counts a request; returns the counters its body bytes go to
    /// (server-wide first).
    pub(crate) fn count(&self, path: &str, is_get: bool, is_head: bool, ranged: bool) -> [Arc<Counters>; 2] {
        lock(&self.arrivals).push(Instant::now());
        let per_path = lock(&self.per_path).entry(path.to_owned()).or_default().clone();
        for counters in [&self.total, &per_path] {
            if is_get {
                counters.gets.fetch_add(1, Ordering::Relaxed);
                if ranged {
                    counters.ranged_gets.fetch_add(1, Ordering::Relaxed);
                }
            }
            if is_head {
                counters.heads.fetch_add(1, Ordering::Relaxed);
            }
        }
        [self.total.clone(), per_path]
    }

    /// Counts an accepted connection.
    pub(crate) fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the headers of a request for `path`.
    pub(crate) fn record_headers(&self, path: &str, headers: Vec<(String, String)>) {
        lock(&self.last_headers).insert(path.to_owned(), headers);
    }

    pub(crate) fn last_headers(&self, path: &str) -> Option<Vec<(String, String)>> {
        lock(&self.last_headers).get(path).cloned()
    }

    pub(crate) fn stats(&self) -> Stats {
        let all = self.total.path_stats();
        Stats {
            gets: all.gets,
            heads: all.heads,
            bytes_served: all.bytes_served,
            peak_bodies: self.bodies.peak.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn path_stats(&self, path: &str) -> PathStats {
        lock(&self.per_path)
            .get(path)
            .map(|counters| counters.path_stats())
            .unwrap_or_default()
    }

    pub(crate) fn arrivals(&self) -> Vec<Instant> {
        lock(&self.arrivals).clone()
    }

    pub(crate) fn reset_stats(&self) {
        lock(&self.arrivals).clear();
        self.total.reset();
        self.connections.store(0, Ordering::Relaxed);
        self.bodies
            .peak
            .store(self.bodies.now.load(Ordering::SeqCst), Ordering::SeqCst);
        for counters in lock(&self.per_path).values() {
            counters.reset();
        }
    }
}
