use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::{json, Value};

use crate::support::*;

/// Fast retries, few attempts: a test that loops shows it quickly.
const RETRY_FAST: &[&str] = &["--backoff", "50ms", "--max-attempts", "3"];

/// Longest a `fetch` of these tests may take before it counts as never
/// returning.
const DEADLINE: Duration = Duration::from_secs(60);

/// `fetch MANIFEST --out OUT ARGS`, killed (and the test failed) when it has
/// not returned by [`DEADLINE`].
fn fetch_bounded(ws: &Workspace, manifest: &Path, out: &Path, extra: &[&str]) -> Output {
    let (stdout, stderr) = (ws.path("fetch.stdout"), ws.path("fetch.stderr"));
    let mut args = vec!["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(RETRY_FAST);
    args.extend_from_slice(extra);
    let mut child = KillOnDrop(
        ws.command(&args)
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .expect("spawn oncefetch fetch"),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for oncefetch") {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "fetch did not return within {DEADLINE:?}; stderr so far:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(stdout).unwrap(),
        stderr: std::fs::read(stderr).unwrap(),
    }
}

/// Ledger rows of one job and kind.
fn rows<'a>(ledger: &'a [Value], job: &Value, kind: &str) -> Vec<&'a Value> {
    ledger
        .iter()
        .filter(|r| r["job_key"] == job["job_key"] && r["kind"] == kind)
        .collect()
}

#[test]
fn a_linked_job_folder_fails_without_retry_and_nothing_is_written_through_it() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(1, 5000));
    let elsewhere = ws.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(ws.out()).unwrap();
    let link = ws.out().join("w");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    let out = fetch_bounded(&ws, &manifest, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let job = &ws.jobs()[0];
    assert_eq!(job["state"], "FAILED", "{job}");
    assert!(
        job["last_error"].as_str().unwrap().contains(link.to_str().unwrap()),
        "names the link: {job}"
    );
    assert_eq!(server.path_stats("/doc").gets, 1, "no retry");
    assert!(!elsewhere.join("a").exists(), "nothing written through the link");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn a_dangling_link_at_the_final_path_fails_without_retry_naming_it() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(2, 5000));
    let nowhere = ws.path("nowhere");
    let link = ws.out().join("w").join("a");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&nowhere, &link).unwrap();
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    let out = fetch_bounded(&ws, &manifest, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let job = &ws.jobs()[0];
    assert_eq!(job["state"], "FAILED", "{job}");
    assert!(
        job["last_error"].as_str().unwrap().contains(link.to_str().unwrap()),
        "names the path: {job}"
    );
    assert_eq!(server.path_stats("/doc").gets, 1, "no retry");
    assert!(!nowhere.exists(), "the link is not followed");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn a_full_disk_before_the_first_byte_stops_the_run_with_every_get_in_the_ledger() {
    let ws = Workspace::new();
    let full = ws.path("full");
    let Some(_tmpfs) = Tmpfs::mount_at(&full, "4m") else {
        return;
    };
    let server = TestServer::start();
    // A small body (written at the end) and a large one (written while it streams).
    server.add("/small", content(3, 100_000));
    server.add("/large", content(4, 3 << 20));
    std::fs::create_dir_all(full.join(".oncefetch").join("partial")).unwrap();
    let filler_path = full.join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let block = vec![7u8; 4096];
    let mut filled = false;
    for _ in 0..2048 {
        if std::io::Write::write_all(&mut filler, &block).is_err() {
            filled = true;
            break;
        }
    }
    drop(filler);
    assert!(filled, "the tmpfs is full");
    let manifest = ws.manifest(&[entry(&server, "ws", "a", "/small"), entry(&server, "wl", "a", "/large")]);
    // A full disk is the machine's: the run stops (exit 1) at the first
    // one, no job fails or loses an attempt, and each GET made is in the
    // ledger as a STREAM attempt that ended in ERROR.
    let out = fetch_bounded(&ws, &manifest, &full, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let (jobs, ledger) = (ws.jobs(), ws.ledger());
    for (work, path) in [("ws", "/small"), ("wl", "/large")] {
        let job = job_of(&jobs, work);
        assert_ne!(job["state"], "FAILED", "{job}");
        assert_eq!(job["attempts"], 0, "no attempt lost: {job}");
        let gets = server.path_stats(path).gets;
        assert!(gets <= 1, "not retried: {path} had {gets} GETs");
        let streams = rows(&ledger, job, "STREAM");
        assert_eq!(streams.len() as u64, gets, "every GET is an attempt in the ledger");
        assert!(streams.iter().all(|r| r["result_code"] == "ERROR"), "{streams:?}");
    }
    let partials: Vec<_> = std::fs::read_dir(full.join(".oncefetch").join("partial"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        partials.iter().all(|p| std::fs::metadata(p).unwrap().len() > 0),
        "no empty partial file is left: {partials:?}"
    );
    std::fs::remove_file(&filler_path).unwrap();
    let rerun = fetch_bounded(&ws, &manifest, &full, &[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", describe(&rerun));
    assert!(ws
        .jobs()
        .iter()
        .all(|job| job["state"] == "SUCCESS" && job["attempts"] == 1));
}

#[test]
fn a_partial_folder_deleted_mid_run_is_made_again_and_every_get_counts() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(5, 3 << 20);
    server.add("/big", body.clone());
    // ~64 KiB every 10 ms: the body takes about half a second.
    server.fault(
        "/big",
        Fault::Throttle {
            chunk: 64 << 10,
            delay_ms: 10,
        },
    );
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/big")]);
    let partial_dir = ws.out().join(".oncefetch").join("partial");
    let deleter = {
        let partial_dir = partial_dir.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                let streaming = std::fs::read_dir(&partial_dir)
                    .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".part"))));
                if streaming {
                    std::fs::remove_dir_all(&partial_dir).expect("delete the partial folder");
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        })
    };
    let out = fetch_bounded(&ws, &manifest, &ws.out(), &[]);
    assert!(deleter.join().unwrap(), "the partial folder was deleted mid-stream");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let job = &ws.jobs()[0];
    assert_eq!(job["state"], "SUCCESS", "{job}");
    assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), body);
    let gets = server.path_stats("/big").gets;
    assert_eq!(gets, 2, "the stream that lost its file is downloaded again");
    assert_eq!(job["attempts"], gets, "every GET is an attempt");
    let ledger = ws.ledger();
    let failed = rows(&ledger, job, "FINALIZE")
        .into_iter()
        .find(|r| r["result_code"] == "ERROR")
        .cloned()
        .expect("the failed placement is in the ledger");
    assert!(
        failed["result"]["error"].as_str().unwrap().contains("No such file"),
        "{failed}"
    );
    assert!(partial_dir.is_dir(), "the partial folder is made again");
}

#[test]
fn a_skipped_duplicate_of_an_original_on_another_filesystem_is_a_verified_copy() {
    let ws = Workspace::new();
    let other = ws.path("other");
    let Some(_tmpfs) = Tmpfs::mount_at(&other, "4m") else {
        return;
    };
    let server = TestServer::start();
    let body = content(6, 300_000);
    server.add("/a", body.clone());
    let first = ws.manifest(&[entry(&server, "w1", "x", "/a")]);
    let out = fetch_bounded(&ws, &first, &other, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // Same canonical URL, another output folder on another filesystem.
    let second = ws.manifest(&[json!({ "work_id": "w2", "artifact_id": "x", "url": server.url("/a#again") })]);
    let out = fetch_bounded(&ws, &second, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let jobs = ws.jobs();
    let (original, duplicate) = (job_of(&jobs, "w1"), job_of(&jobs, "w2"));
    assert_eq!(duplicate["state"], "SKIPPED_DUPLICATE", "{duplicate}");
    assert_eq!(duplicate["duplicate_of"], original["job_key"]);
    assert_eq!(server.path_stats("/a").gets, 1, "one URL is downloaded once");
    let path = duplicate["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), body);
    let dev = |p: &str| std::fs::metadata(p).unwrap().dev();
    assert_ne!(
        dev(path),
        dev(original["path"].as_str().unwrap()),
        "a copy on its own filesystem"
    );
    let dedupe = rows(&ws.ledger(), duplicate, "DEDUPE")
        .into_iter()
        .find(|r| r["result_code"] == "OK")
        .cloned()
        .expect("a DEDUPE OK row");
    assert_eq!(dedupe["result"]["copied"], true, "{dedupe}");
    let leftovers: Vec<_> = std::fs::read_dir(Path::new(path).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["x"], "no temporary copy is left");
}

#[test]
fn a_skipped_duplicate_whose_original_was_deleted_downloads_its_own_bytes() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(7, 20_000);
    server.add("/a", body.clone());
    let elsewhere = ws.path("elsewhere");
    let first = ws.manifest(&[entry(&server, "w1", "x", "/a")]);
    let out = fetch_bounded(&ws, &first, &elsewhere, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    std::fs::remove_file(elsewhere.join("w1").join("x")).unwrap();
    let second = ws.manifest(&[json!({ "work_id": "w2", "artifact_id": "x", "url": server.url("/a#again") })]);
    let out = fetch_bounded(&ws, &second, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let jobs = ws.jobs();
    let job = job_of(&jobs, "w2");
    assert_eq!(job["state"], "SUCCESS", "{job}");
    assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), body);
    assert_eq!(
        server.path_stats("/a").gets,
        2,
        "the duplicate downloaded its own bytes"
    );
}

#[test]
fn identical_content_across_filesystems_is_copied_verified_and_linked_where_it_can_be() {
    let ws = Workspace::new();
    // The folder of work `wt` is a mount point: placing into it crosses filesystems.
    let Some(_tmpfs) = Tmpfs::mount_at(&ws.out().join("wt"), "4m") else {
        return;
    };
    let server = TestServer::start();
    let body = content(8, 200_000);
    server.add("/a", body.clone());
    server.add("/b", body.clone());
    let manifest = ws.manifest(&[
        entry(&server, "wt", "x", "/a"),
        entry(&server, "wm", "x", "/b"),
        json!({ "work_id": "wd", "artifact_id": "x", "url": server.url("/a#again") }),
    ]);
    let out = fetch_bounded(&ws, &manifest, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(server.path_stats("/a").gets, 1);
    assert_eq!(server.path_stats("/b").gets, 1);
    let jobs = ws.jobs();
    let (wt, wm, wd) = (job_of(&jobs, "wt"), job_of(&jobs, "wm"), job_of(&jobs, "wd"));
    for job in [wt, wm, wd] {
        assert!(
            job["state"] == "SUCCESS" || job["state"] == "SKIPPED_DUPLICATE",
            "{job}"
        );
        assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), body, "{job}");
    }
    let meta = |path: &str| std::fs::metadata(path).unwrap();
    let file_of = |j: &Value| meta(j["path"].as_str().unwrap());
    assert_ne!(file_of(wt).dev(), file_of(wm).dev());
    let ledger = ws.ledger();
    let dedupe_ok = |j: &Value| {
        rows(&ledger, j, "DEDUPE")
            .into_iter()
            .find(|r| r["result_code"] == "OK")
            .cloned()
            .unwrap_or_else(|| panic!("a DEDUPE OK row: {j}"))
    };
    let skipped = [wt, wd]
        .into_iter()
        .find(|j| j["state"] == "SKIPPED_DUPLICATE")
        .expect("one of /a's jobs is a duplicate");
    assert_eq!(
        dedupe_ok(skipped)["result"]["copied"],
        true,
        "a copy across filesystems"
    );
    // A downloaded copy is linked to the first copy when both share a filesystem.
    for job in [wt, wm, wd].into_iter().filter(|j| j["state"] == "SUCCESS") {
        let result = dedupe_ok(job)["result"].clone();
        let first = meta(result["original"].as_str().unwrap());
        let mine = file_of(job);
        let stored_once = (first.dev(), first.ino()) == (mine.dev(), mine.ino());
        assert_eq!(
            stored_once,
            first.dev() == mine.dev(),
            "one inode exactly when on the first copy's filesystem: {result}"
        );
    }
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    let leftovers: Vec<_> = std::fs::read_dir(ws.out().join("wt"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["x"], "no temporary copy is left");
}

#[test]
fn an_id_shaped_like_a_shortened_name_gets_its_own_file() {
    use sha2::{Digest, Sha256};
    let server = TestServer::start();
    let ws = Workspace::new();
    let long = "x".repeat(300);
    let digest = hex::encode(Sha256::digest(long.as_bytes()));
    let lookalike = format!("{}~{}", "x".repeat(150), &digest[..16]);
    server.add("/long", content(9, 1000));
    server.add("/lookalike", content(10, 1000));
    let manifest = ws.manifest(&[
        entry(&server, "w", &long, "/long"),
        entry(&server, "w", &lookalike, "/lookalike"),
    ]);
    let out = fetch_bounded(&ws, &manifest, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let jobs = ws.jobs();
    assert!(jobs.iter().all(|j| j["state"] == "SUCCESS"), "{jobs:?}");
    let path_of = |id: &str| {
        let job = jobs.iter().find(|j| j["artifact_id"] == id).unwrap();
        PathBuf::from(job["path"].as_str().unwrap())
    };
    assert_ne!(path_of(&long), path_of(&lookalike));
    assert_eq!(
        path_of(&lookalike).file_name().unwrap().to_str().unwrap(),
        format!("{}%7E{}", "x".repeat(150), &digest[..16]),
        "`~` is escaped"
    );
    assert_eq!(std::fs::read(path_of(&lookalike)).unwrap(), content(10, 1000));
}

#[test]
fn verify_quick_checks_each_files_size_and_that_it_is_a_regular_file() {
    let server = TestServer::start();
    let ws = Workspace::new();
    for i in 0..4u64 {
        server.add(&format!("/q{i}"), content(600 + i, 2000));
    }
    let lines: Vec<_> = (0..4u64)
        .map(|i| entry(&server, &format!("w{i}"), "a", &format!("/q{i}")))
        .collect();
    let manifest = ws.manifest(&lines);
    let out = fetch_bounded(&ws, &manifest, &ws.out(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let quick = || ws.run(&["verify", "--quick", "--json", "--out", ws.out().to_str().unwrap()]);
    let clean = quick();
    assert_eq!(clean.status.code(), Some(0), "{}", describe(&clean));
    let file = |i: u64| ws.out().join(format!("w{i}")).join("a");
    std::fs::write(file(0), b"shorter").unwrap();
    std::fs::remove_file(file(1)).unwrap();
    std::fs::remove_file(file(2)).unwrap();
    std::fs::create_dir(file(2)).unwrap();
    let dirty = quick();
    assert_eq!(dirty.status.code(), Some(5), "{}", describe(&dirty));
    let counts: serde_json::Value = serde_json::from_slice(&dirty.stdout).expect("JSON");
    assert_eq!(
        (
            counts["ok"].as_u64(),
            counts["different"].as_u64(),
            counts["missing"].as_u64()
        ),
        (Some(1), Some(2), Some(1)),
        "{counts}"
    );
    let problems = String::from_utf8_lossy(&dirty.stderr);
    assert!(problems.contains("7 bytes, ledger 2000"), "{problems}");
    assert!(problems.contains("is not a regular file"), "{problems}");
}
