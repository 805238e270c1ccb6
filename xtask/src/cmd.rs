//! Tiny helpers to run a command: echo it, run it, and fail with its command line.

use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{bail, Context, Result};

/// The command line of `cmd` as one shell-like string (program and arguments, no environment).
pub(crate) fn cmdline(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|word| quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` quoted for a POSIX shell when it holds anything but plain characters.
pub(crate) fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Echoes `cmd` to stderr as `$ cmdline`, runs it with inherited stdio and fails unless it exits 0.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` failed: {status}", cmdline(cmd));
    }
    Ok(())
}

/// Echoes `cmd` to stderr as `$ cmdline`, runs it with inherited stdio and returns its exit status
/// for the caller to judge.
pub(crate) fn status(cmd: &mut Command) -> Result<ExitStatus> {
    let line = cmdline(cmd);
    eprintln!("$ {line}");
    cmd.status().with_context(|| format!("could not start `{line}`"))
}

/// Echoes and runs `cmd`, returning its stdout; stderr is shown as it comes. Fails unless it exits 0.
pub(crate) fn read(cmd: &mut Command) -> Result<String> {
    let line = cmdline(cmd);
    eprintln!("$ {line}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{line}`"))?;
    if !out.status.success() {
        bail!("`{line}` failed: {}", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Runs `cmd` without echoing it, capturing stdout and stderr; the caller judges the exit status.
pub(crate) fn quiet(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{}`", cmdline(cmd)))
}

/// Like [`quiet`], but fails (with the command's stderr) unless it exits 0; returns stdout.
pub(crate) fn quiet_ok(cmd: &mut Command) -> Result<String> {
    let out = quiet(cmd)?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            cmdline(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
