//! `retry` narrowing, `verify` against the wrong folder, `ledger --job`
//! prefixes, live leases in `jobs` and `status`, and a missing SQLite
//! ledger refused by every command but `plan` and `fetch`.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::Value;

use crate::support::*;

/// One attempt each, so a 5xx ends FAILED (retryable, out of attempts).
const ONE_ATTEMPT: &[&str] = &["--max-attempts", "1", "--backoff", "50ms"];

/// Failed jobs on two servers: `a` 503, `b` 500 and `c` 404 (permanent) on
/// the first, `d` and `e` 503 on the second; `ok` succeeds.
struct Failures {
    first: TestServer,
    second: TestServer,
    ws: Workspace,
}

impl Failures {
    fn new() -> Self {
        let (first, second, ws) = (TestServer::start(), TestServer::start(), Workspace::new());
        let mut lines = Vec::new();
        for (server, work, status) in [
            (&first, "a", 503),
            (&first, "b", 500),
            (&first, "c", 404),
            (&second, "d", 503),
            (&second, "e", 503),
        ] {
            let path = format!("/{work}");
            server.add(&path, content(7, 1000));
            server.fault(&path, Fault::Status { status, times: 1000 });
            lines.push(entry(server, work, "x", &path));
        }
        first.add("/ok", content(8, 1000));
        lines.push(entry(&first, "ok", "x", "/ok"));
        let manifest = ws.manifest(&lines);
        let out = ws.fetch(&manifest, ONE_ATTEMPT);
        assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
        let failures = Self { first, second, ws };
        assert_eq!(failures.in_state("FAILED"), set(&["a", "b", "c", "d", "e"]));
        failures
    }

    /// Work ids of the jobs in `state`.
    fn in_state(&self, state: &str) -> BTreeSet<String> {
        self.ws
            .jobs()
            .iter()
            .filter(|j| j["state"] == state)
            .map(|j| j["work_id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn key_of(&self, work: &str) -> String {
        job_of(&self.ws.jobs(), work)["job_key"].as_str().unwrap().to_owned()
    }

    /// `retry ARGS`: asserts it succeeded and printed `requeued N`.
    fn retry(&self, args: &[&str], requeued: u64) -> String {
        let mut all = vec!["retry"];
        all.extend_from_slice(args);
        let out = self.ws.run(&all);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.contains(&format!("requeued {requeued} ")), "{}", describe(&out));
        stdout
    }

    fn planned(&self) -> BTreeSet<String> {
        self.in_state("PLANNED")
    }
}

fn set(works: &[&str]) -> BTreeSet<String> {
    works.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn retry_refuses_success_and_points_to_recover() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(1, 5000));
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    assert_eq!(ws.fetch(&manifest, &[]).status.code(), Some(0));
    let retry = ws.run(&["retry", "--state", "SUCCESS"]);
    assert_eq!(retry.status.code(), Some(2), "{}", describe(&retry));
    assert!(
        String::from_utf8_lossy(&retry.stderr).contains("recover"),
        "{}",
        describe(&retry)
    );
    assert_eq!(ws.jobs()[0]["state"], "SUCCESS", "nothing requeued");
    let planned = ws.run(&["retry", "--state", "PLANNED"]);
    assert_eq!(planned.status.code(), Some(2), "{}", describe(&planned));
}

#[test]
fn retry_by_job_key_prefix_requeues_that_job_only() {
    let f = Failures::new();
    let key = f.key_of("d");
    f.retry(&["--job", &key[..12]], 1);
    assert_eq!(f.planned(), set(&["d"]));
    let unknown = f.ws.run(&["retry", "--job", "zzzz"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    assert_eq!(f.planned(), set(&["d"]));
}

#[test]
fn retry_by_work_id_requeues_that_work_only() {
    let f = Failures::new();
    f.retry(&["--work", "e"], 1);
    assert_eq!(f.planned(), set(&["e"]));
}

#[test]
fn retry_by_host_requeues_that_server_only() {
    let f = Failures::new();
    let host = f.second.addr().to_string();
    f.retry(&["--host", &host], 2);
    assert_eq!(f.planned(), set(&["d", "e"]));
    // The host alone matches every port: the first server's retryable two.
    assert_eq!(f.first.addr().ip().to_string(), "127.0.0.1");
    f.retry(&["--host", "127.0.0.1"], 2);
    assert_eq!(f.planned(), set(&["a", "b", "d", "e"]));
}

#[test]
fn retry_by_error_text_requeues_matching_failures_only() {
    let f = Failures::new();
    f.retry(&["--error", "500"], 1);
    assert_eq!(f.planned(), set(&["b"]));
}

#[test]
fn retry_takes_permanent_failures_only_when_asked() {
    let f = Failures::new();
    let plain = f.retry(&[], 4);
    assert!(plain.contains("4 retryable"), "{plain}");
    assert_eq!(f.in_state("FAILED"), set(&["c"]), "the 404 stays FAILED");
    let permanent = f.retry(&["--permanent"], 1);
    assert!(permanent.contains("1 permanent"), "{permanent}");
    assert_eq!(f.planned(), set(&["a", "b", "c", "d", "e"]));
    assert_eq!(f.in_state("SUCCESS"), set(&["ok"]), "SUCCESS is never requeued");
    let requeues = f.ws.ledger().iter().filter(|r| r["kind"] == "REQUEUE").count();
    assert_eq!(requeues, 5, "one REQUEUE row per requeued job");
}

#[test]
fn verify_against_a_wrong_or_moved_folder_fails_naming_the_count() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/one", content(2, 3000));
    server.add("/two", content(3, 3000));
    let manifest = ws.manifest(&[entry(&server, "w1", "a", "/one"), entry(&server, "w2", "a", "/two")]);
    assert_eq!(ws.fetch(&manifest, &[]).status.code(), Some(0));
    let out = ws.out();
    let ok = ws.run(&["verify", "--out", out.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", describe(&ok));
    let wrong = ws.path("elsewhere");
    std::fs::create_dir_all(&wrong).unwrap();
    let verify = ws.run(&["verify", "--out", wrong.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(5), "{}", describe(&verify));
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(stdout.contains("looked for 2"), "{}", describe(&verify));
    assert!(stdout.contains("2 not under"), "{}", describe(&verify));
    // A moved folder: the ledger's absolute paths now point outside it.
    let moved = ws.path("moved");
    std::fs::rename(&out, &moved).unwrap();
    let verify = ws.run(&["verify", "--out", moved.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(5), "{}", describe(&verify));
    let own_paths = ws.run(&["verify"]);
    assert_eq!(own_paths.status.code(), Some(5), "{}", describe(&own_paths));
    assert!(
        String::from_utf8_lossy(&own_paths.stdout).contains("2 missing"),
        "{}",
        describe(&own_paths)
    );
    std::fs::rename(&moved, &out).unwrap();
    let back = ws.run(&["verify"]);
    assert_eq!(back.status.code(), Some(0), "{}", describe(&back));
}

#[test]
fn ledger_job_takes_a_unique_prefix_and_says_when_none_matches() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/one", content(4, 2000));
    server.add("/two", content(5, 2000));
    let manifest = ws.manifest(&[entry(&server, "w1", "a", "/one"), entry(&server, "w2", "a", "/two")]);
    assert_eq!(ws.fetch(&manifest, &[]).status.code(), Some(0));
    let key = job_of(&ws.jobs(), "w1")["job_key"].as_str().unwrap().to_owned();
    let rows = json_lines(&ws.run(&["ledger", "--job", &key[..10]]));
    assert!(!rows.is_empty(), "a unique prefix lists the job's rows");
    assert!(rows.iter().all(|r| r["job_key"] == key.as_str()));
    let none = ws.run(&["ledger", "--job", "zzzz"]);
    assert_eq!(none.status.code(), Some(1), "{}", describe(&none));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no job"),
        "{}",
        describe(&none)
    );
}

#[test]
fn ledger_job_refuses_an_ambiguous_prefix_naming_the_count() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let lines: Vec<Value> = (0..40).map(|i| entry(&server, &format!("w{i}"), "a", "/x")).collect();
    let manifest = ws.manifest(&lines);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let keys: Vec<String> = ws
        .jobs()
        .iter()
        .map(|j| j["job_key"].as_str().unwrap().to_owned())
        .collect();
    // 40 keys over 16 first digits: some digit starts two keys or more.
    let (prefix, n) = (0..16)
        .map(|d| format!("{d:x}"))
        .map(|p| {
            let n = keys.iter().filter(|k| k.starts_with(&p)).count();
            (p, n)
        })
        .max_by_key(|(_, n)| *n)
        .unwrap();
    assert!(n >= 2);
    let out = ws.run(&["ledger", "--job", &prefix]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{n} jobs")),
        "{}",
        describe(&out)
    );
}

#[test]
fn jobs_and_status_tell_a_live_lease_from_a_dead_one() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/big", content(9, 4 << 20));
    server.fault(
        "/big",
        Fault::Throttle {
            chunk: 16 << 10,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/big")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let out = ws.out();
    let args = ["run", "--out", out.to_str().unwrap(), "--lease-ttl", "2s"];
    let mut child = KillOnDrop(
        ws.command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn oncefetch run"),
    );
    let started = Instant::now();
    while server.stats().bytes_served < 128 << 10 {
        assert!(started.elapsed() < Duration::from_secs(20), "bytes never flowed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let job = ws.jobs().remove(0);
    assert_eq!(job["state"], "STREAMING", "{job}");
    assert!(job["lease_owner"].as_str().is_some_and(|o| !o.is_empty()), "{job}");
    let expires = humantime::parse_rfc3339(job["lease_expires_at"].as_str().expect("expiry shown")).unwrap();
    assert!(expires > std::time::SystemTime::now(), "{job}");
    let status = &json_lines(&ws.run(&["status", "--json"]))[0];
    assert_eq!(
        status["leases"],
        serde_json::json!({ "live": 1, "expired": 0 }),
        "{status}"
    );
    assert_eq!(status["total"], 1, "{status}");
    // The worker dies: its lease runs out and nobody holds the job.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let job = ws.jobs().remove(0);
    assert_eq!(job["state"], "STREAMING", "{job}");
    assert_eq!(
        (&job["lease_owner"], &job["lease_expires_at"]),
        (&Value::Null, &Value::Null),
        "{job}"
    );
    let status = &json_lines(&ws.run(&["status", "--json"]))[0];
    assert_eq!(
        status["leases"],
        serde_json::json!({ "live": 0, "expired": 1 }),
        "{status}"
    );
    let human = String::from_utf8_lossy(&ws.run(&["status"]).stdout).into_owned();
    assert!(
        human.contains("expired leases") && human.contains("live leases"),
        "{human}"
    );
}

/// `oncefetch --db DB ARGS`, run in `cwd`.
fn on_db(db: &str, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .arg("--db")
        .arg(db)
        .args(args)
        .current_dir(cwd)
        .env_remove("ONCEFETCH_DB")
        .output()
        .expect("run oncefetch")
}

/// Every file and folder under `dir`, relative to it, sorted.
fn tree(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

/// The one line a refused command prints.
fn no_ledger_line(path: &std::path::Path) -> String {
    format!("error: no ledger at {}; `oncefetch plan` creates one", path.display())
}

/// Asserts `output` is the refusal of a missing ledger at `path`: exit 1,
/// one line on stderr naming the path, nothing on stdout.
fn assert_refused(output: &std::process::Output, path: &std::path::Path, what: &str) {
    assert_eq!(output.status.code(), Some(1), "{what}: {}", describe(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end(), no_ledger_line(path), "{what}: {}", describe(output));
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {}", describe(output));
    assert!(output.stdout.is_empty(), "{what}: {}", describe(output));
}

/// Every command but `plan` and `fetch`, against a missing ledger.
fn commands_that_need_a_ledger(out: &str) -> Vec<Vec<&str>> {
    vec![
        vec!["status"],
        vec!["status", "--json"],
        vec!["jobs"],
        vec!["jobs", "--state", "FAILED"],
        vec!["ledger"],
        vec!["ledger", "--job", "abc"],
        vec!["verify"],
        vec!["verify", "--out", out],
        vec!["retry"],
        vec!["recover"],
        vec!["recover", "--out", out],
        vec!["run", "--out", out],
    ]
}

#[test]
fn commands_refuse_a_missing_sqlite_ledger_naming_it_and_creating_nothing() {
    let ws = Workspace::new();
    let out = ws.out();
    let out = out.to_str().unwrap();
    // A typo in the file name, one in a folder name, in every URL form.
    let typo = ws.path("ledgr.db");
    let in_missing_folder = ws.path("no-such-folder").join("ledger.db");
    let forms = [
        (format!("sqlite:{}", typo.display()), typo.clone()),
        (format!("sqlite://{}", typo.display()), typo.clone()),
        (typo.display().to_string(), typo.clone()),
        (format!("sqlite:{}?synchronous=full", typo.display()), typo.clone()),
        (
            format!("sqlite:{}", in_missing_folder.display()),
            in_missing_folder.clone(),
        ),
    ];
    for (db, path) in &forms {
        for args in commands_that_need_a_ledger(out) {
            let output = on_db(db, ws.dir.path(), &args);
            assert_refused(&output, path, &format!("--db {db} {args:?}"));
            assert_eq!(
                tree(ws.dir.path()),
                Vec::<std::path::PathBuf>::new(),
                "{db} {args:?} created a file"
            );
        }
    }
}

#[test]
fn the_default_ledger_missing_from_the_working_folder_is_refused_by_its_full_path() {
    let ws = Workspace::new();
    let cwd = ws.dir.path().canonicalize().unwrap();
    for args in commands_that_need_a_ledger("out") {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
            .args(&args)
            .current_dir(&cwd)
            .env_remove("ONCEFETCH_DB")
            .output()
            .expect("run oncefetch");
        assert_refused(&output, &cwd.join("oncefetch.db"), &format!("{args:?}"));
        assert_eq!(tree(&cwd), Vec::<std::path::PathBuf>::new(), "{args:?} created a file");
    }
    // A relative --db names the file it resolved to.
    let relative = on_db("sqlite:sub/ledger.db", &cwd, &["status"]);
    assert_refused(&relative, &cwd.join("sub").join("ledger.db"), "relative --db");
    assert_eq!(tree(&cwd), Vec::<std::path::PathBuf>::new());
}

#[test]
fn plan_creates_a_missing_ledger_and_the_other_commands_then_open_it() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/p", content(10, 1500));
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/p")]);
    let path = ws.path("new-folder").join("ledger.db");
    let db = format!("sqlite:{}", path.display());
    let planned = on_db(&db, ws.dir.path(), &["plan", manifest.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", describe(&planned));
    assert!(path.is_file(), "plan created the ledger and its folder");
    let status = &json_lines(&on_db(&db, ws.dir.path(), &["status", "--json"]))[0];
    assert_eq!(status["total"], 1, "{status}");
    let out = ws.out();
    let ran = on_db(&db, ws.dir.path(), &["run", "--out", out.to_str().unwrap()]);
    assert_eq!(ran.status.code(), Some(0), "{}", describe(&ran));
    let verified = on_db(&db, ws.dir.path(), &["verify", "--out", out.to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));
    // An empty manifest creates an empty ledger, which every command opens.
    let empty_path = ws.path("empty.db");
    let empty_db = empty_path.display().to_string();
    let nothing = ws.path("nothing.jsonl");
    std::fs::write(&nothing, "").unwrap();
    let planned = on_db(&empty_db, ws.dir.path(), &["plan", nothing.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", describe(&planned));
    assert!(empty_path.is_file());
    for args in commands_that_need_a_ledger(out.to_str().unwrap()) {
        let output = on_db(&empty_db, ws.dir.path(), &args);
        let code = output.status.code();
        let refused = String::from_utf8_lossy(&output.stderr).contains("no ledger at");
        assert!(!refused, "{args:?}: {}", describe(&output));
        if args[0] != "ledger" || args.len() == 1 {
            assert_eq!(code, Some(0), "{args:?}: {}", describe(&output));
        }
    }
}

#[test]
fn fetch_creates_a_missing_ledger() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/f", content(11, 1500));
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/f")]);
    let path = ws.path("fresh").join("ledger.db");
    let db = path.display().to_string();
    let out = ws.out();
    let fetched = on_db(
        &db,
        ws.dir.path(),
        &["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert_eq!(fetched.status.code(), Some(0), "{}", describe(&fetched));
    assert!(path.is_file(), "fetch created the ledger and its folder");
    let jobs = json_lines(&on_db(&db, ws.dir.path(), &["jobs", "--json"]));
    assert_eq!(jobs[0]["state"], "SUCCESS");
}
