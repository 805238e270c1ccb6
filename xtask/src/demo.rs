//! `cargo xtask demo`: oncefetch at work without a network. Serves a generated corpus from the
//! in-process test server on loopback, writes a manifest, runs the release `oncefetch fetch`
//! against it and kills it (SIGKILL) in the middle of a large download, runs it again to show the
//! download resumed with one ranged GET and two honest failures (a 404, a checksum mismatch),
//! runs the same fetch once more to show that nothing is downloaded twice, and says where
//! everything is. Each claim it prints is checked against what the server saw.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::json;

use crate::bench::{self, splitmix64};
use crate::cmd;

/// Help for `cargo xtask demo --help`.
const HELP: &str = "\
cargo xtask demo — see oncefetch work, no network needed

USAGE:
    cargo xtask demo [--dir PATH] [--files N]

Builds the release oncefetch, serves N generated files (default 200, 1–256 KiB; a few share
their bytes, a few URLs are listed twice), one large file sent slowly, a URL that answers 404
and a file whose manifest line declares the wrong sha256, from an HTTP server on 127.0.0.1;
writes a manifest and runs `oncefetch fetch` on it, killing it (SIGKILL) mid-way through the
large file; runs the fetch again (the large file resumes with one ranged GET; the 404 and the
mismatch end FAILED, exit 4), shows `oncefetch status` and the failed jobs, then runs the same
fetch again (it downloads nothing) and `oncefetch verify`.

OPTIONS:
    --dir PATH   where the manifest, ledger and files go, emptied first (default TARGET_DIR/demo)
    --files N    number of distinct files served (default 200, at least 10)
";

/// The large file's path and size: big enough to be caught mid-download.
const LARGE_PATH: &str = "/records/large/dataset.tar";
const LARGE: usize = 32 << 20;

/// Seed of the demo's sizes and contents.
const SEED: u64 = 0xDE30_0000_0000_0001;

/// One manifest line.
#[derive(Debug)]
struct Line {
    work_id: String,
    artifact_id: String,
    url: String,
}

/// `cargo xtask demo ARGS…`.
pub(crate) fn run(args: impl IntoIterator<Item = String>) -> Result<()> {
    let mut dir = None;
    let mut files = 200usize;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(args.next().context("--dir needs a path")?)),
            "--files" => {
                let n = args.next().context("--files needs a count")?;
                files = n.parse().with_context(|| format!("`{n}` is not a count"))?;
                if files < 10 {
                    bail!("--files needs at least 10");
                }
            }
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(());
            }
            _ => bail!("unknown option `{arg}` for demo (see `cargo xtask demo --help`)"),
        }
    }
    let dir = dir.unwrap_or_else(|| bench::target_dir().join("demo"));
    let oncefetch = bench::release_oncefetch()?;

    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("could not empty {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let out = dir.join("files");
    let db = format!("sqlite:{}", dir.join("oncefetch.db").display());
    let manifest = dir.join("manifest.jsonl");

    let server = TestServer::start();
    let (lines, served_bytes) = serve_corpus(&server, files);
    let mut text = String::new();
    for line in &lines {
        let json = json!({ "work_id": line.work_id, "artifact_id": line.artifact_id, "url": line.url });
        let _ = writeln!(text, "{json}");
    }
    for json in serve_headline_cases(&server) {
        let _ = writeln!(text, "{json}");
    }
    fs::write(&manifest, text).with_context(|| format!("could not write {}", manifest.display()))?;
    println!(
        "demo: serving {files} files ({:.1} MiB) on {}; the manifest {} lists {} artifacts",
        mib(served_bytes),
        server.url("/"),
        manifest.display(),
        lines.len()
    );
    println!(
        "demo: 3 of them have the bytes of another file, 3 repeat another line's URL; one large file \
         ({:.0} MiB, sent slowly), one URL that answers 404, one line that declares the wrong sha256\n",
        mib(LARGE as u64)
    );

    let fetch_command = || {
        let mut command = Command::new(&oncefetch);
        command
            .arg("fetch")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .args(["--db", &db])
            // A killed run's leases stay until they expire: short ones, so
            // the rerun takes over within seconds.
            .args(["--lease-ttl", "3s"]);
        command
    };
    crash_mid_download(&server, fetch_command())?;
    println!("\n$ oncefetch status --db {db}");
    print!(
        "{}",
        cmd::quiet_ok(Command::new(&oncefetch).args(["status", "--db", &db]))?
    );

    // The large file goes at full speed now; the rerun resumes it.
    server.clear_faults(LARGE_PATH);
    server.reset_stats();
    println!(
        "\ndemo: the same fetch again: it takes over the dead run's work once its lease expires \
         (--lease-ttl 3s here; a Ctrl-C instead gives leases back at once)"
    );
    let status = cmd::status(&mut fetch_command())?;
    if status.code() != Some(4) {
        bail!("the rerun should end with the two failures (exit 4), not {status}");
    }
    let large = server.path_stats(LARGE_PATH);
    if (large.gets, large.ranged_gets) != (1, 1) || large.bytes_served >= LARGE as u64 {
        bail!("the large file should resume with one ranged GET, but the server saw {large:?}");
    }
    println!(
        "\ndemo: exit 4 (jobs FAILED, listed below); the large file resumed with one ranged GET: \
         the server sent only the last {:.1} of its {:.1} MiB",
        mib(large.bytes_served),
        mib(LARGE as u64)
    );
    println!("\n$ oncefetch jobs --state FAILED --db {db}");
    print!(
        "{}",
        cmd::quiet_ok(Command::new(&oncefetch).args(["jobs", "--state", "FAILED", "--db", &db]))?
    );
    println!("\n$ oncefetch status --db {db}");
    print!(
        "{}",
        cmd::quiet_ok(Command::new(&oncefetch).args(["status", "--db", &db]))?
    );

    server.reset_stats();
    println!("\ndemo: the same fetch once more: every job is settled");
    cmd::status(&mut fetch_command())?;
    let third = server.stats();
    if third.gets + third.heads != 0 {
        bail!("nothing should be downloaded again, but the server saw {third:?}");
    }
    println!("demo: this time the server saw no request at all\n");

    let mut verify = Command::new(&oncefetch);
    verify.arg("verify").arg("--out").arg(&out).args(["--db", &db]);
    cmd::run(&mut verify)?;

    println!(
        "\ndemo: the files are in {}/<work_id>/<artifact_id>, e.g.",
        out.display()
    );
    for line in lines.iter().take(3) {
        println!("    {}", out.join(&line.work_id).join(&line.artifact_id).display());
    }
    println!("the ledger is {db}; look around with");
    let bin = oncefetch.display();
    println!("    {bin} jobs --db {db} | head -3");
    println!("    {bin} jobs --state SKIPPED_DUPLICATE --db {db}");
    println!("    {bin} ledger --db {db} | head -9");
    let path = |line: &Line| out.join(&line.work_id).join(&line.artifact_id).display().to_string();
    println!(
        "same bytes, stored once (hard links): ls -li {} {}",
        path(&lines[0]),
        path(&lines[7])
    );
    println!(
        "same URL, downloaded once: ls -li {} {}",
        path(&lines[3]),
        path(&lines[files])
    );
    Ok(())
}

/// Adds `files` distinct paths to `server` and returns the manifest lines (one per path plus three
/// that repeat a URL) and the bytes served. Three paths hold the bytes of an earlier one.
fn serve_corpus(server: &TestServer, files: usize) -> (Vec<Line>, u64) {
    let mut rng = SEED;
    let mut lines = Vec::with_capacity(files + 3);
    let mut bodies: Vec<Vec<u8>> = Vec::with_capacity(files);
    let mut served = 0;
    for i in 0..files {
        let size = 1024 + splitmix64(&mut rng) % (256 * 1024 - 1024 + 1);
        let seed = splitmix64(&mut rng);
        // Files 7, 8 and 9 repeat the bytes of files 0, 1 and 2 under other names.
        let body = if (7..10).contains(&i) {
            bodies[i - 7].clone()
        } else {
            content(seed, usize::try_from(size).expect("a small size"))
        };
        let work = i / 4;
        let path = format!("/records/{work}/file-{}.pdf", i % 4);
        served += body.len() as u64;
        server.add(&path, body.clone());
        bodies.push(body);
        lines.push(Line {
            work_id: format!("paper-{work:03}"),
            artifact_id: format!("file-{}.pdf", i % 4),
            url: server.url(&path),
        });
    }
    // Another listing names three of the same URLs: each is downloaded once.
    for i in 3..6 {
        let url = lines[i].url.clone();
        lines.push(Line {
            work_id: "mirror-listing".to_owned(),
            artifact_id: format!("copy-{i}.pdf"),
            url,
        });
    }
    (lines, served)
}

/// Serves the cases the demo is about: a large file sent slowly (to be killed mid-way), a URL
/// that answers 404, and a file whose line declares another sha256. Returns their manifest lines.
fn serve_headline_cases(server: &TestServer) -> Vec<serde_json::Value> {
    server.add(LARGE_PATH, content(SEED ^ 1, LARGE));
    // About 8 MiB a second: four seconds for the whole file.
    server.fault(
        LARGE_PATH,
        Fault::Throttle {
            chunk: 256 << 10,
            delay_ms: 30,
        },
    );
    server.add("/records/changed/report.pdf", content(SEED ^ 2, 50_000));
    vec![
        json!({ "work_id": "big-dataset", "artifact_id": "dataset.tar", "url": server.url(LARGE_PATH) }),
        json!({ "work_id": "withdrawn", "artifact_id": "paper.pdf", "url": server.url("/records/withdrawn/paper.pdf") }),
        json!({
            "work_id": "changed",
            "artifact_id": "report.pdf",
            "url": server.url("/records/changed/report.pdf"),
            "sha256": "0".repeat(64),
        }),
    ]
}

/// Runs the first fetch and kills it (SIGKILL, as a crash or an OOM kill would) once a third of
/// the large file is in.
fn crash_mid_download(server: &TestServer, mut fetch: Command) -> Result<()> {
    println!("demo: first fetch, killed with SIGKILL a third of the way through the large file");
    eprintln!("$ {}", cmd::cmdline(&fetch));
    let mut child = fetch.spawn().context("could not start oncefetch fetch")?;
    let started = Instant::now();
    while server.path_stats(LARGE_PATH).bytes_served < LARGE as u64 / 3 {
        if let Some(status) = child.try_wait()? {
            bail!("the first fetch ended ({status}) before the large file was a third in");
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            bail!("the large file never got a third of the way in");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().context("could not kill the first fetch")?;
    child.wait()?;
    println!(
        "\ndemo: killed oncefetch after the server had sent {:.1} MiB of the large file",
        mib(server.path_stats(LARGE_PATH).bytes_served)
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
