//! The mixed corpus of one torture episode, served by three [`TestServer`]s on loopback (three
//! hosts to oncefetch): a plain host with small files, a few large throttled ones and content
//! shared by several paths; a flaky host whose answers fail now and then (503, 429 with
//! `Retry-After`, bodies cut short); and a host that ignores `Range`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use oncefetch_test_server::{content, Fault, TestServer};
use sha2::{Digest, Sha256};

use super::rng::Rng;

/// Work ids that would escape or hide if they were used as paths (SPEC §6).
const HOSTILE_WORK: &[&str] = &["..", "/etc", ".", "a/../../b", "~", ".oncefetch", "..\\..", "w\u{0}x"];

/// One manifest line and what its job must end with.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// The line's `work_id`.
    pub(crate) work_id: String,
    /// The line's `artifact_id`.
    pub(crate) artifact_id: String,
    /// The URL the line names.
    pub(crate) url: String,
    /// The SHA-256 (hex) of the bytes the URL serves.
    pub(crate) sha256: String,
}

/// The servers and the lines of one episode.
#[derive(Debug)]
pub(crate) struct Corpus {
    /// The plain host, the flaky host and the host ignoring `Range`.
    pub(crate) servers: [TestServer; 3],
    /// Every manifest line, duplicates included.
    pub(crate) lines: Vec<Line>,
    /// The bytes of each distinct URL, by URL.
    pub(crate) bodies: BTreeMap<String, Vec<u8>>,
}

/// What a corpus is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Small files on the plain host.
    pub(crate) small: usize,
    /// Large throttled files on the plain host.
    pub(crate) large: usize,
    /// Size of each large file.
    pub(crate) large_size: usize,
    /// Small files on the flaky host (each with a fault).
    pub(crate) flaky: usize,
    /// Files on the host ignoring `Range` (the first one large and throttled).
    pub(crate) no_range: usize,
}

impl Shape {
    /// The corpus of the torture runs: about 14 MiB, long enough to stream that kills land
    /// mid-download.
    pub(crate) const TORTURE: Shape = Shape {
        small: 24,
        large: 4,
        large_size: 3 << 20,
        flaky: 10,
        no_range: 5,
    };
}

impl Corpus {
    /// Starts the servers and registers a corpus of `shape` drawn from `rng`.
    pub(crate) fn new(shape: Shape, rng: &mut Rng) -> Self {
        let servers = [TestServer::start(), TestServer::start(), TestServer::start()];
        let mut corpus = Corpus {
            servers,
            lines: Vec::new(),
            bodies: BTreeMap::new(),
        };
        let base = rng.next_u64();
        let seed = |n: u64| base.wrapping_add(n);
        for i in 0..shape.small {
            let len = rng.range(1, 64 << 10) as usize;
            corpus.serve(0, &format!("/small/{i}.bin"), content(seed(i as u64), len), &[]);
        }
        // Content shared by other paths: stored once, the later copies hard links.
        for i in 0..3 {
            let len = rng.range(1, 32 << 10) as usize;
            let body = content(seed(1000 + i), len);
            corpus.serve(0, &format!("/same/{i}a.bin"), body.clone(), &[]);
            corpus.serve(0, &format!("/same/{i}b.bin"), body, &[]);
        }
        for i in 0..shape.large {
            let throttle = Fault::Throttle {
                chunk: 64 << 10,
                delay_ms: rng.range(5, 15),
            };
            let body = content(seed(2000 + i as u64), shape.large_size);
            corpus.serve(0, &format!("/large/{i}.bin"), body, &[throttle]);
        }
        for i in 0..shape.flaky {
            let len = rng.range(1 << 10, 128 << 10) as usize;
            let fault = match rng.range(0, 3) {
                0 => Fault::Status {
                    status: 503,
                    times: rng.range(1, 2) as u32,
                },
                1 => Fault::RetryAfterSecs {
                    status: 429,
                    secs: 1,
                    times: 1,
                },
                2 => Fault::Truncate {
                    after: len as u64 / 2,
                    times: rng.range(1, 2) as u32,
                },
                _ => Fault::Status { status: 500, times: 1 },
            };
            corpus.serve(
                1,
                &format!("/flaky/{i}.bin"),
                content(seed(3000 + i as u64), len),
                &[fault],
            );
        }
        for i in 0..shape.no_range {
            let (len, throttle) = match i {
                0 => (
                    512 << 10,
                    Some(Fault::Throttle {
                        chunk: 32 << 10,
                        delay_ms: 10,
                    }),
                ),
                _ => (rng.range(1, 256 << 10) as usize, None),
            };
            let mut faults = vec![Fault::IgnoreRange];
            faults.extend(throttle);
            corpus.serve(
                2,
                &format!("/whole/{i}.bin"),
                content(seed(4000 + i as u64), len),
                &faults,
            );
        }
        // The same URL on other lines: one download, the other jobs SKIPPED_DUPLICATE.
        let originals = corpus.lines.clone();
        for n in 0..4 {
            let original = &originals[rng.index(originals.len())];
            corpus.lines.push(Line {
                work_id: format!("dup-{n}"),
                artifact_id: original.artifact_id.clone(),
                url: original.url.clone(),
                sha256: original.sha256.clone(),
            });
        }
        corpus
    }

    fn serve(&mut self, host: usize, path: &str, body: Vec<u8>, faults: &[Fault]) {
        let server = &self.servers[host];
        server.add(path, body.clone());
        for fault in faults {
            server.fault(path, fault.clone());
        }
        let url = server.url(path);
        let n = self.lines.len();
        // Every fifth line has ids that try to leave the output folder or hide.
        let (work_id, artifact_id) = match n % 5 {
            3 => {
                let work = HOSTILE_WORK[n / 5 % HOSTILE_WORK.len()];
                (work.to_owned(), format!("../{n}/../../x"))
            }
            _ => (
                format!("work-{n}"),
                path.rsplit('/').next().unwrap_or("file").to_owned(),
            ),
        };
        self.lines.push(Line {
            work_id,
            artifact_id,
            url: url.clone(),
            sha256: hex(&Sha256::digest(&body)),
        });
        self.bodies.insert(url, body);
    }

    /// The manifest as JSON Lines.
    pub(crate) fn manifest(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            let object = serde_json::json!({
                "work_id": line.work_id,
                "artifact_id": line.artifact_id,
                "url": line.url,
            });
            let _ = writeln!(text, "{object}");
        }
        text
    }

    /// The bytes of every distinct URL together: what one clean download would be served.
    pub(crate) fn size(&self) -> u64 {
        self.bodies.values().map(|b| b.len() as u64).sum()
    }

    /// Body bytes the three servers have sent so far.
    pub(crate) fn bytes_served(&self) -> u64 {
        self.servers.iter().map(|s| s.stats().bytes_served).sum()
    }

    /// The URLs served most past their size: (URL, bytes served, size), at most `n`, most first.
    pub(crate) fn most_resent(&self, n: usize) -> Vec<(String, u64, u64)> {
        let mut all: Vec<(String, u64, u64)> = self
            .bodies
            .iter()
            .map(|(url, body)| {
                let served = self
                    .servers
                    .iter()
                    .find_map(|server| Some(server.path_stats(url.strip_prefix(&server.url(""))?).bytes_served))
                    .unwrap_or(0);
                (url.clone(), served, body.len() as u64)
            })
            .collect();
        all.sort_by_key(|(_, served, size)| std::cmp::Reverse(served.saturating_sub(*size)));
        all.truncate(n);
        all
    }

    /// The GET and HEAD requests the server of `url` received for its path (0 for a URL of none).
    pub(crate) fn requests_for(&self, url: &str) -> u64 {
        self.servers
            .iter()
            .find_map(|server| {
                let path = url.strip_prefix(&server.url(""))?;
                let stats = server.path_stats(path);
                Some(stats.gets + stats.heads)
            })
            .unwrap_or(0)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
