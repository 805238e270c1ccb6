use std::collections::BTreeSet;
use std::process::{Command, Output};

use crate::support::*;

/// `oncefetch ARGS` with no ledger flag or variable (the commands here must not need one).
fn oncefetch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .args(args)
        .env_remove("ONCEFETCH_DB")
        .env_remove("NO_COLOR")
        .output()
        .expect("run oncefetch")
}

/// `--help` of `command` (the top level when empty), checked to exit 0.
fn long_help(command: &[&str]) -> String {
    let mut args = command.to_vec();
    args.push("--help");
    let out = oncefetch(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The lines of the section of `help` headed `heading` (a line of its own), up to the next
/// heading (a line not indented) or the end.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = help.lines().skip_while(|l| l.trim_end() != heading);
    assert!(lines.next().is_some(), "no {heading:?} section in:\n{help}");
    lines
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The exit codes an `Exit status:` section lists: the terms of its rows (`0`, `130, 143`:
/// indented two spaces, two spaces before the explanation), not numbers in the explanations.
fn exit_codes(help: &str) -> BTreeSet<u8> {
    let mut codes = BTreeSet::new();
    for line in section(help, "Exit status:") {
        let Some(row) = line.strip_prefix("  ").filter(|r| !r.starts_with(' ')) else {
            continue; // a wrapped explanation
        };
        let term = row.split("  ").next().unwrap_or_default();
        for code in term.split(", ") {
            codes.insert(
                code.parse()
                    .unwrap_or_else(|_| panic!("{code:?} is no exit code in {line:?}")),
            );
        }
    }
    codes
}

/// The subcommands, with the exit codes that apply to each (SPEC §7).
const SUBCOMMANDS: &[(&str, &[u8])] = &[
    ("plan", &[0, 1, 2, 3]),
    ("run", &[0, 1, 2, 4, 130, 143]),
    ("fetch", &[0, 1, 2, 3, 4, 130, 143]),
    ("status", &[0, 1, 2]),
    ("jobs", &[0, 1, 2]),
    ("ledger", &[0, 1, 2]),
    ("recover", &[0, 1, 2]),
    ("verify", &[0, 1, 2, 5]),
    ("retry", &[0, 1, 2]),
    ("completions", &[0, 1, 2]),
];

#[test]
fn every_subcommand_help_lists_the_exit_codes_that_apply_to_it() {
    let top = long_help(&[]);
    for (command, _) in SUBCOMMANDS {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(command)),
            "--help lists {command}"
        );
    }
    assert_eq!(
        exit_codes(&top),
        BTreeSet::from([0, 1, 2, 3, 4, 5, 130, 143]),
        "the top level lists every code:\n{top}"
    );
    for (command, codes) in SUBCOMMANDS {
        let help = long_help(&[command]);
        assert_eq!(
            exit_codes(&help),
            codes.iter().copied().collect::<BTreeSet<_>>(),
            "{command} --help lists its exit codes, and only those:\n{help}"
        );
        // `-h` is short, but points at the codes too.
        let short = oncefetch(&[command, "-h"]);
        let short = String::from_utf8_lossy(&short.stdout);
        let listed: Vec<String> = codes.iter().map(u8::to_string).collect();
        assert!(
            short.contains(&format!("Exit status: {}", listed.join(", "))),
            "{command} -h names its exit codes:\n{short}"
        );
    }
}

#[test]
fn plan_and_fetch_help_list_the_manifest_fields() {
    for command in ["plan", "fetch"] {
        let help = long_help(&[command]);
        let fields = section(&help, "Manifest:");
        for field in ["work_id", "artifact_id", "url", "sha256", "size"] {
            assert!(
                fields.iter().any(|l| l.trim_start().starts_with(field)),
                "{command} --help has a row for {field}:\n{help}"
            );
        }
        let text = fields.join("\n");
        assert!(text.contains(".csv") && text.contains("standard input"), "{text}");
    }
    assert!(
        !long_help(&["status"]).contains("Manifest:"),
        "status reads no manifest"
    );
}

#[test]
fn every_subcommand_help_lists_the_environment_and_examples() {
    let top = long_help(&[]);
    for (command, _) in SUBCOMMANDS {
        let help = long_help(&[command]);
        let env = section(&help, "Environment:").join("\n");
        assert!(env.contains("NO_COLOR"), "{command}: {env}");
        let ledger = ["ONCEFETCH_DB", "ONCEFETCH_LOG"];
        let proxies = ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"];
        for var in ledger {
            // `completions` opens no ledger and logs nothing.
            assert_eq!(env.contains(var), *command != "completions", "{command}, {var}: {env}");
        }
        for var in proxies {
            assert_eq!(
                env.contains(var),
                matches!(*command, "run" | "fetch"),
                "{command}, {var}: {env}"
            );
            assert!(top.contains(var), "the top level lists {var}");
        }
        let examples = section(&help, "Examples:");
        assert!(
            examples
                .iter()
                .any(|l| l.trim_start().starts_with(&format!("oncefetch {command}"))),
            "{command} --help shows an example of it:\n{help}"
        );
    }
}

#[test]
fn completions_for_bash_are_valid_bash() {
    let ws = Workspace::new();
    let out = ws.run(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let script = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(script.contains("oncefetch") && script.contains("complete "), "{script}");
    for word in ["fetch", "--concurrency", "--out", "completions"] {
        assert!(script.contains(word), "bash completion knows {word}");
    }
    let file = ws.path("oncefetch.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().expect("run bash");
    assert!(check.status.success(), "bash -n: {}", describe(&check));
    assert!(!ws.path("ledger.db").exists(), "completions open no ledger");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = oncefetch(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("oncefetch"),
            "{shell}: {}",
            describe(&out)
        );
    }
    assert_eq!(oncefetch(&["completions", "tcsh"]).status.code(), Some(2));
    assert_eq!(oncefetch(&["completions"]).status.code(), Some(2));
}

#[test]
fn version_names_the_compiled_in_stores_and_fetchers() {
    let out = oncefetch(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.trim_end();
    let prefix = format!("oncefetch {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix) && line.ends_with(')'), "{line}");
    let inner = &line[prefix.len()..line.len() - 1];
    let (stores, fetchers) = inner.split_once("; ").expect("stores; fetchers");
    let stores: Vec<&str> = stores.strip_prefix("stores: ").expect(line).split(", ").collect();
    let fetchers: Vec<&str> = fetchers.strip_prefix("fetchers: ").expect(line).split(", ").collect();
    assert_eq!(cfg!(feature = "sqlite"), stores.contains(&"sqlite"), "{line}");
    assert_eq!(cfg!(feature = "postgres"), stores.contains(&"postgres"), "{line}");
    assert_eq!(fetchers, ["http", "https"], "{line}");
    let short = oncefetch(&["-V"]);
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim_end(),
        format!("oncefetch {}", env!("CARGO_PKG_VERSION")),
        "-V stays short"
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn short_flags_j_and_o() {
    use oncefetch_test_server::{content, TestServer};

    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/a", content(1, 3000));
    server.add("/b", content(2, 3000));
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/a")]);
    let out = ws.out();
    let fetch = ws.run(&[
        "fetch",
        manifest.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-j",
        "2",
    ]);
    assert_eq!(fetch.status.code(), Some(0), "{}", describe(&fetch));
    assert_eq!(std::fs::read(out.join("w").join("a")).unwrap(), content(1, 3000));
    let manifest = ws.manifest(&[entry(&server, "w", "b", "/b")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let run = ws.run(&["run", "-j1", "-o", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(std::fs::read(out.join("w").join("b")).unwrap(), content(2, 3000));
    let verify = ws.run(&["verify", "-o", out.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    let recover = ws.run(&["recover", "-o", out.to_str().unwrap()]);
    assert_eq!(recover.status.code(), Some(0), "{}", describe(&recover));
    // `-j` is `--concurrency`, range-checked the same way.
    let zero = ws.run(&["run", "-o", out.to_str().unwrap(), "-j", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", describe(&zero));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--concurrency"));
}
