use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use oncefetch_test_server::TestServer;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A temp folder with a ledger and an output folder.
pub(crate) struct Workspace {
    pub(crate) dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn db(&self) -> String {
        format!("sqlite:{}", self.dir.path().join("ledger.db").display())
    }

    pub(crate) fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a JSON Lines manifest.
    pub(crate) fn manifest(&self, lines: &[Value]) -> PathBuf {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let path = self.path("manifest.jsonl");
        std::fs::write(&path, text).expect("write manifest");
        path
    }

    /// `oncefetch --db … ARGS`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oncefetch"));
        cmd.arg("--db").arg(self.db()).args(args).env_remove("ONCEFETCH_DB");
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run oncefetch")
    }

    /// `fetch MANIFEST --out OUT` with fast test settings and extra args.
    pub(crate) fn fetch(&self, manifest: &Path, extra: &[&str]) -> Output {
        let out = self.out();
        let mut args = vec!["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub(crate) fn jobs(&self) -> Vec<Value> {
        json_lines(&self.run(&["jobs", "--json"]))
    }

    pub(crate) fn ledger(&self) -> Vec<Value> {
        json_lines(&self.run(&["ledger", "--json"]))
    }

    pub(crate) fn partial_files(&self) -> Vec<PathBuf> {
        let dir = self.out().join(".oncefetch").join("partial");
        match std::fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

pub(crate) fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "command failed: {}", describe(output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub(crate) fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn entry(server: &TestServer, work: &str, artifact: &str, path: &str) -> Value {
    serde_json::json!({ "work_id": work, "artifact_id": artifact, "url": server.url(path) })
}

/// The job of one work id.
pub(crate) fn job_of<'a>(jobs: &'a [Value], work: &str) -> &'a Value {
    jobs.iter()
        .find(|j| j["work_id"] == work)
        .unwrap_or_else(|| panic!("no job for {work}"))
}

/// Fast retries for tests.
pub(crate) const FAST: &[&str] = &["--concurrency", "8"];

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves no `oncefetch` running.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl KillOnDrop {
    /// `oncefetch ARGS` started in `ws`, its stdout dropped and its stderr
    /// piped (read it with [`KillOnDrop::stderr`]).
    pub(crate) fn spawn(ws: &Workspace, args: &[&str]) -> Self {
        Self(
            ws.command(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn oncefetch"),
        )
    }

    /// Its exit status, waiting at most `limit` (and failing past it).
    pub(crate) fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for oncefetch") {
                return status;
            }
            assert!(started.elapsed() < limit, "oncefetch did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// All it wrote to its piped stderr (once it has exited).
    pub(crate) fn stderr(&mut self) -> String {
        std::io::read_to_string(self.0.stderr.take().expect("stderr piped")).unwrap()
    }
}

/// Waits until `cond` holds, looking again every 20 ms; panics with "timed
/// out waiting for `what`" once `limit` has passed.
pub(crate) fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most 20 s) until `server` has sent `bytes` body bytes.
pub(crate) fn await_bytes_served(server: &TestServer, bytes: u64) {
    let started = Instant::now();
    while server.stats().bytes_served < bytes {
        assert!(started.elapsed() < Duration::from_secs(20), "bytes never flowed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmpfs mounted for one test, unmounted when dropped; tests of full or
/// read-only file systems fill it, or [`Tmpfs::make_read_only`].
pub(crate) struct Tmpfs {
    dir: PathBuf,
    /// The temp folder it is mounted on, when it made one.
    _temp: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// A 64 MiB one on a temp folder, or `None` (the reason printed, for the
    /// caller to skip) when this test cannot mount one, not being root.
    pub(crate) fn mount() -> Option<Self> {
        Self::mount_sized("64m")
    }

    /// [`Tmpfs::mount`] of `size` (`mount -o size=…`: `8m`, say).
    pub(crate) fn mount_sized(size: &str) -> Option<Self> {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut mounted = Self::mount_at(temp.path(), size)?;
        mounted._temp = Some(temp);
        Some(mounted)
    }

    /// One of `size` at `dir` (made if missing).
    pub(crate) fn mount_at(dir: &Path, size: &str) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(dir).unwrap();
        let probe = dir.join(".owner-probe");
        std::fs::write(&probe, b"").expect("probe file");
        let uid = std::fs::metadata(&probe).expect("probe metadata").uid();
        std::fs::remove_file(&probe).expect("remove probe");
        if uid != 0 {
            eprintln!("skipped: not running as root, cannot mount a tmpfs");
            return None;
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}: {status}", dir.display());
        Some(Self {
            dir: dir.to_owned(),
            _temp: None,
        })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `mount -o remount,rw`.
    pub(crate) fn make_writable(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount read-write: {status}");
    }

    /// `mount -o remount,ro`.
    pub(crate) fn make_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount read-only: {status}");
        assert!(
            std::fs::write(self.path("write-probe"), b"").is_err(),
            "the mount refuses writes"
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Asserts that `times` (a server's request times, in order, at least two)
/// keep `per_sec` requests a second within 10 %, over all of them.
pub(crate) fn assert_rate(times: &[Instant], per_sec: f64) {
    let span = times[times.len() - 1] - times[0];
    let measured = (times.len() - 1) as f64 / span.as_secs_f64();
    assert!(
        (measured - per_sec).abs() <= per_sec / 10.0,
        "{measured:.2} requests/s over {} requests, not {per_sec}/s ± 10 %",
        times.len()
    );
}
