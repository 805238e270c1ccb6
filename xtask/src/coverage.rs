//! `cargo xtask coverage`: line coverage of core, the stores and fetch-http, measured with rustc's
//! own source-based coverage (`-C instrument-coverage`) and the `llvm-profdata` / `llvm-cov` of
//! rustup's `llvm-tools` component — no other tool to install, and nothing fetched at run time
//! (the component is added with `rustup component add llvm-tools` when missing).
//!
//! The crates' tests run instrumented in a target folder of their own (`target/coverage`, so the
//! everyday build is untouched), against a throwaway PostgreSQL; then the profiles are merged and
//! the lines of each crate's `src/` counted.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bench::{root, target_dir};
use crate::cmd;
use crate::postgres::TempPostgres;

/// Help for `cargo xtask coverage --help`.
pub(crate) const HELP: &str = "\
cargo xtask coverage — line coverage of core, the stores and fetch-http

USAGE:
    cargo xtask coverage [--with-cli]

Builds the tests of oncefetch-core, oncefetch-store-sqlite, oncefetch-store-postgres and
oncefetch-fetch-http with `-C instrument-coverage` into target/coverage, runs them (with a
throwaway PostgreSQL, so the PostgreSQL store's tests run too), merges the profiles with
llvm-profdata and prints each crate's line coverage (its src/ only) from llvm-cov. Uses rustup's
llvm-tools component (added with `rustup component add llvm-tools` when missing). Writes the
per-file figures to target/coverage/summary.json.

OPTIONS:
    --with-cli   also run the CLI's tests (the oncefetch binary instrumented too): slower, and
                 counts the lines the end-to-end tests reach
";

/// The crates measured: (package, folder of its sources).
const CRATES: &[(&str, &str)] = &[
    ("oncefetch-core", "crates/core/src/"),
    ("oncefetch-store-sqlite", "crates/store-sqlite/src/"),
    ("oncefetch-store-postgres", "crates/store-postgres/src/"),
    ("oncefetch-fetch-http", "crates/fetch-http/src/"),
];

/// `cargo xtask coverage ARGS…`.
pub(crate) fn run(args: impl IntoIterator<Item = String>) -> Result<()> {
    let mut with_cli = false;
    for arg in args {
        match arg.as_str() {
            "--with-cli" => with_cli = true,
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(());
            }
            _ => bail!("unknown option `{arg}` for coverage (see `cargo xtask coverage --help`)"),
        }
    }
    let tools = llvm_tools()?;
    let dir = target_dir().join("coverage");
    let profiles = dir.join("profraw");
    let _ = fs::remove_dir_all(&profiles);
    fs::create_dir_all(&profiles)?;
    let mut packages: Vec<&str> = CRATES.iter().map(|(p, _)| *p).collect();
    if with_cli {
        packages.push("oncefetch");
    }
    let objects = build_tests(&dir, &packages)?;
    let server = TempPostgres::start()?;
    let mut test = cargo(&dir);
    // Every test binary runs even when one fails (a timing test on a loaded machine, say).
    test.arg("test")
        .arg("--no-fail-fast")
        .args(package_args(&packages))
        .arg("--all-features");
    test.envs(server.env());
    test.env("LLVM_PROFILE_FILE", profiles.join("%p-%m.profraw"));
    // A failing test still leaves its profile: report the figures, then fail.
    let status = cmd::status(&mut test)?;
    drop(server);
    let merged = dir.join("merged.profdata");
    let mut merge = Command::new(&tools.profdata);
    merge.args(["merge", "-sparse", "-o"]).arg(&merged);
    for entry in fs::read_dir(&profiles)? {
        merge.arg(entry?.path());
    }
    cmd::quiet_ok(&mut merge)?;
    let mut export = Command::new(&tools.cov);
    export
        .args(["export", "-summary-only", "-instr-profile"])
        .arg(&merged)
        .arg("-ignore-filename-regex=(\\.cargo/registry|/rustc/|/tests/|/benches/)");
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            export.arg("-object");
        }
        export.arg(object);
    }
    let summary = cmd::quiet_ok(&mut export)?;
    fs::write(dir.join("summary.json"), &summary)?;
    let per_crate = per_crate(&serde_json::from_str(&summary).context("llvm-cov printed no JSON")?);
    println!("line coverage (rustc -C instrument-coverage, llvm-cov; src/ of each crate):");
    println!("{:<26} {:>7} {:>7} {:>8}", "crate", "lines", "covered", "percent");
    for (package, folder) in CRATES {
        let (lines, covered) = per_crate.get(*folder).copied().unwrap_or((0, 0));
        println!(
            "{package:<26} {lines:>7} {covered:>7} {:>7.1}%",
            100.0 * covered as f64 / lines.max(1) as f64
        );
    }
    println!("per file: {}", dir.join("summary.json").display());
    if !status.success() {
        bail!("some tests failed ({status}); the figures above count the tests that ran");
    }
    Ok(())
}

/// The `llvm-profdata` and `llvm-cov` matching the toolchain.
struct Tools {
    profdata: PathBuf,
    cov: PathBuf,
}

fn llvm_tools() -> Result<Tools> {
    let sysroot = cmd::quiet_ok(Command::new("rustc").args(["--print", "sysroot"]))?;
    let host = cmd::quiet_ok(Command::new("rustc").arg("-vV"))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")?;
    let bin = Path::new(sysroot.trim()).join("lib/rustlib").join(host).join("bin");
    let tools = Tools {
        profdata: bin.join("llvm-profdata"),
        cov: bin.join("llvm-cov"),
    };
    if !tools.profdata.is_file() || !tools.cov.is_file() {
        eprintln!("coverage: llvm-tools missing; adding them with rustup");
        cmd::run(Command::new("rustup").args(["component", "add", "llvm-tools"]))
            .context("coverage needs rustup's llvm-tools component (`rustup component add llvm-tools`)")?;
    }
    Ok(tools)
}

fn cargo(dir: &Path) -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(root())
        .env("CARGO_TARGET_DIR", dir)
        .env("RUSTFLAGS", "-C instrument-coverage")
        // Build scripts and proc macros are instrumented too: their profiles go here, not into
        // the working folder (the test run sets its own).
        .env("LLVM_PROFILE_FILE", dir.join("build-profraw").join("%p-%m.profraw"))
        // Doc tests would need their own binaries kept; the line figures come from the rest.
        .env_remove("RUSTDOCFLAGS");
    cargo
}

fn package_args<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    packages.iter().flat_map(|p| ["-p", *p]).collect()
}

/// Builds the instrumented tests (and binaries) and returns every executable to read counters from.
fn build_tests(dir: &Path, packages: &[&str]) -> Result<Vec<PathBuf>> {
    let mut build = cargo(dir);
    build
        .args(["test", "--no-run", "--all-features", "--message-format=json"])
        .args(package_args(packages));
    let out = cmd::read(&mut build)?;
    let objects: Vec<PathBuf> = out
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .collect();
    if objects.is_empty() {
        bail!("`cargo test --no-run` built no test executable");
    }
    Ok(objects)
}

/// (lines, covered) of each crate folder of [`CRATES`], from `llvm-cov export -summary-only`.
fn per_crate(summary: &Value) -> BTreeMap<&'static str, (u64, u64)> {
    let mut totals = BTreeMap::new();
    let files = summary["data"][0]["files"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for file in files {
        let name = file["filename"].as_str().unwrap_or_default();
        let Some((_, folder)) = CRATES.iter().find(|(_, folder)| name.contains(folder)) else {
            continue;
        };
        let lines = &file["summary"]["lines"];
        let entry = totals.entry(*folder).or_insert((0, 0));
        entry.0 += lines["count"].as_u64().unwrap_or(0);
        entry.1 += lines["covered"].as_u64().unwrap_or(0);
    }
    totals
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_are_summed_per_crate_folder() {
        let summary = json!({"data": [{"files": [
            {"filename": "/w/crates/core/src/a.rs", "summary": {"lines": {"count": 10, "covered": 9}}},
            {"filename": "/w/crates/core/src/b/c.rs", "summary": {"lines": {"count": 10, "covered": 1}}},
            {"filename": "/w/crates/store-sqlite/src/x.rs", "summary": {"lines": {"count": 4, "covered": 4}}},
            {"filename": "/w/crates/cli/src/main.rs", "summary": {"lines": {"count": 99, "covered": 0}}},
        ]}]});
        let totals = per_crate(&summary);
        assert_eq!(totals["crates/core/src/"], (20, 10));
        assert_eq!(totals["crates/store-sqlite/src/"], (4, 4));
        assert_eq!(totals.len(), 2);
    }
}
