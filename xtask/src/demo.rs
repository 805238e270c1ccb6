//! `cargo xtask demo`: oncefetch at work without a network. Serves a generated corpus from the
//! in-process test server on loopback, writes a manifest, runs the release `oncefetch fetch`
//! against it, shows `oncefetch status` and what the server saw, runs the same fetch again to show
//! that nothing is downloaded twice, and says where everything is.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use oncefetch_test_server::{content, TestServer};
use serde_json::json;

use crate::bench::{self, splitmix64};
use crate::cmd;

/// Help for `cargo xtask demo --help`.
const HELP: &str = "\
cargo xtask demo — see oncefetch work, no network needed

USAGE:
    cargo xtask demo [--dir PATH] [--files N]

Builds the release oncefetch, serves N generated files (default 200, 1–256 KiB; a few share
their bytes, a few URLs are listed twice) from an HTTP server on 127.0.0.1, writes a manifest,
runs `oncefetch fetch` on it, prints `oncefetch status` and the server's request counts, then
runs the same fetch again (it downloads nothing) and `oncefetch verify`.

OPTIONS:
    --dir PATH   where the manifest, ledger and files go, emptied first (default TARGET_DIR/demo)
    --files N    number of distinct files served (default 200, at least 10)
";

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
    fs::write(&manifest, text).with_context(|| format!("could not write {}", manifest.display()))?;
    println!(
        "demo: serving {files} files ({:.1} MiB) on {}; the manifest {} lists {} artifacts",
        served_bytes as f64 / f64::from(1 << 20),
        server.url("/"),
        manifest.display(),
        lines.len()
    );
    println!("demo: 3 of them have the bytes of another file, 3 repeat another line's URL\n");

    let fetch = |what: &str| -> Result<()> {
        println!("demo: {what}");
        let mut command = Command::new(&oncefetch);
        command
            .arg("fetch")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .args(["--db", &db]);
        cmd::run(&mut command)
    };
    fetch("first fetch")?;
    let first = server.stats();
    println!("\n$ oncefetch status --db {db}");
    print!(
        "{}",
        cmd::quiet_ok(Command::new(&oncefetch).args(["status", "--db", &db]))?
    );
    println!(
        "\ndemo: the server saw {} GET and {} HEAD requests and sent {:.1} MiB\n",
        first.gets,
        first.heads,
        first.bytes_served as f64 / f64::from(1 << 20)
    );

    server.reset_stats();
    fetch("the same fetch again: every job is already done")?;
    let second = server.stats();
    println!(
        "demo: this time the server saw {} GET and {} HEAD requests\n",
        second.gets, second.heads
    );

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
