//! A private nginx on loopback serving the corpus: its own config file, pid file and error log in
//! the benchmark folder, started with `daemon off` as our child and stopped (master and workers)
//! when the guard is dropped. The same files are served at `/` without limit and at [`LIMITED`]
//! with a per-connection rate limit, each request below it logged in the access log
//! [`Nginx::limited_log`].

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::access_log;
use crate::cmd;

/// How long nginx may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fast shutdown (SIGTERM) may take before master and workers get SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The path prefix under which nginx serves the corpus again, each connection limited to the rate
/// given to [`Nginx::start`]: `/limited/large/file.bin` is `/large/file.bin`, slower.
pub(crate) const LIMITED: &str = "/limited";

/// A running nginx; dropping it stops the master and its workers.
#[derive(Debug)]
pub(crate) struct Nginx {
    child: Child,
    port: u16,
    error_log: PathBuf,
    limited_log: PathBuf,
    /// Clock ticks per second of `/proc/PID/stat` times.
    ticks: f64,
}

impl Nginx {
    /// Starts `binary` serving `root` on a free port of 127.0.0.1 with `workers` worker processes,
    /// keeping its config, pid file, logs and temp folders in `dir`; below [`LIMITED`] each
    /// connection gets at most `limit_rate` bytes per second (0: no limit).
    pub(crate) fn start(binary: &Path, dir: &Path, root: &Path, workers: u32, limit_rate: u64) -> Result<Nginx> {
        fs::create_dir_all(dir.join("temp")).with_context(|| format!("could not create {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("could not find a free loopback port")?
            .port();
        let conf = dir.join("nginx.conf");
        let error_log = dir.join("error.log");
        fs::write(&conf, config(dir, root, port, workers, limit_rate, is_root()))
            .with_context(|| format!("could not write {}", conf.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log);
        eprintln!("$ {}", cmd::cmdline(&command));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C stops the benchmark between runs; the guard stops nginx.
            .process_group(0)
            .spawn()
            .with_context(|| format!("could not start `{}`", cmd::cmdline(&command)))?;
        let mut nginx = Nginx {
            child,
            port,
            error_log,
            limited_log: dir.join(LIMITED_LOG),
            ticks: clock_ticks(),
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "nginx exited during startup ({status}); see {}",
                    self.error_log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on 127.0.0.1:{} within {START_TIMEOUT:?}; see {}",
                    self.port,
                    self.error_log.display()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The access log of the requests below [`LIMITED`], in [`access_log::FORMAT`] (no other
    /// request is logged).
    pub(crate) fn limited_log(&self) -> &Path {
        &self.limited_log
    }

    /// User plus system CPU seconds used so far by the master and its live workers.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let master = self.child.id();
        let ticks: u64 = std::iter::once(master)
            .chain(children(master))
            .filter_map(cpu_ticks)
            .sum();
        ticks as f64 / self.ticks
    }

    /// The pids of the master and its children.
    fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        std::iter::once(master).chain(children(master)).collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pids = self.pids();
        signal("TERM", self.child.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            eprintln!(
                "nginx: master {} still running after {STOP_TIMEOUT:?}, killing it",
                self.child.id()
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Workers normally leave with the master; one that did not is killed by pid.
        for pid in pids.into_iter().skip(1) {
            if alive(pid) {
                signal("KILL", pid);
            }
        }
    }
}

/// The access log of the requests below [`LIMITED`], in `dir`.
const LIMITED_LOG: &str = "limited.access.log";

/// The config: `workers` workers, sendfile, keep-alive, everything in `dir`, and `root` served
/// again below [`LIMITED`] at `limit_rate` bytes per second per connection. Only the requests
/// below [`LIMITED`] are logged (in [`LIMITED_LOG`]): the others are many and their log would
/// cost the timed runs.
fn config(dir: &Path, root: &Path, port: u16, workers: u32, limit_rate: u64, as_root: bool) -> String {
    let temp = dir.join("temp");
    let temp = temp.display();
    // As root nginx would run its workers as `nobody`, who may not enter the benchmark folder.
    let user = if as_root { "user root root;\n" } else { "" };
    format!(
        "# Written by `cargo xtask bench`.
{user}worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    log_format limited '{format}';
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
        location {LIMITED}/ {{
            alias {root}/;
            limit_rate {limit_rate};
            access_log {dir}/{LIMITED_LOG} limited;
        }}
    }}
}}
",
        dir = dir.display(),
        root = root.display(),
        format = access_log::FORMAT,
    )
}

/// The pids whose parent is `parent` (Linux `/proc`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(parent))
        .collect()
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    // After the command name: state(0) ppid(1) … utime(11) stime(12).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The fields of `/proc/PID/stat` after the parenthesized command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

fn clock_ticks() -> f64 {
    cmd::quiet_ok(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Sends `SIGname` to `pid` with kill(1); a process already gone is fine.
fn signal(name: &str, pid: u32) {
    if let Err(e) = cmd::quiet(Command::new("kill").arg(format!("-{name}")).arg(pid.to_string())) {
        eprintln!("warning: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_port_root_and_workers() {
        let text = config(Path::new("/b"), Path::new("/b/www"), 8123, 2, 20 << 20, true);
        assert!(text.starts_with("# Written"));
        assert!(text.contains("user root root;\nworker_processes 2;"));
        assert!(text.contains("listen 127.0.0.1:8123;"));
        assert!(text.contains("root /b/www;"));
        assert!(text.contains("sendfile on;"));
        assert!(text.contains("access_log off;"));
        assert!(text.contains(
            "location /limited/ {\n            alias /b/www/;\n            limit_rate 20971520;\n            \
             access_log /b/limited.access.log limited;\n"
        ));
        assert!(text.contains(&format!("    log_format limited '{}';\n", access_log::FORMAT)));
        assert!(!access_log::FORMAT.contains('\''), "the format is quoted with '");
        assert!(!config(Path::new("/b"), Path::new("/b/www"), 1, 2, 0, false).contains("user "));
    }

    #[test]
    fn our_own_cpu_time_is_readable() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
