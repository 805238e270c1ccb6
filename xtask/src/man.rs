//! `cargo xtask man [--out DIR]`: the man pages of `oncefetch` and of each subcommand
//! (`oncefetch.1`, `oncefetch-plan.1`, …), rendered with clap_mangen from the CLI's own clap
//! command, with the sections its `--help` ends with (exit status, manifest, environment,
//! examples) as man sections.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;
use oncefetch::help::{self, Topic};

/// Writes every page into `dir` (created when missing); returns their paths.
pub(crate) fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, page) in pages()? {
        let path = dir.join(name);
        fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Each page's file name and text: the top level first, then the subcommands in their order.
pub(crate) fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cli = oncefetch::Cli::command().disable_help_subcommand(true);
    cli.build();
    // The plain version: the stores that `--version` names are the built binary's, not xtask's.
    let source = format!("oncefetch {}", cli.get_version().unwrap_or_default());
    let subcommands: Vec<clap::Command> = cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned().collect();
    let names: Vec<String> = subcommands.iter().map(page_name).collect();
    let mut pages = vec![render(&cli, Topic::Top, &source, &names)?];
    for sub in &subcommands {
        let topic = Topic::from_name(sub.get_name())
            .with_context(|| format!("`oncefetch {}` has no help topic", sub.get_name()))?;
        pages.push(render(sub, topic, &source, &[page_name(&cli)])?);
    }
    Ok(pages)
}

/// `oncefetch-plan` (clap names a built subcommand so).
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_owned()
}

/// One page: clap_mangen's sections (name, synopsis, description, options, subcommands), then
/// `topic`'s help sections as man sections, and the pages `see_also` names; `source` goes in the
/// footer.
fn render(cmd: &clap::Command, topic: Topic, source: &str, see_also: &[String]) -> Result<(String, Vec<u8>)> {
    // The sections replace clap's text after the options, the footer its version.
    let bare = cmd
        .clone()
        .after_help(None::<&'static str>)
        .after_long_help(None::<&'static str>)
        .version(None::<&'static str>)
        .long_version(None::<&'static str>);
    let man = Man::new(bare).source(source);
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut roff = Roff::new();
    for section in help::sections(topic) {
        roff.control("SH", [section.title.to_uppercase().as_str()]);
        if let Some(lead) = section.lead {
            roff.text([roman(lead)]);
        }
        for (term, text) in &section.rows {
            if section.examples {
                roff.control("PP", []).text([roman(text.as_str())]);
                roff.control("RS", ["4"]).control("nf", []);
                roff.text([bold(term.as_str())]);
                roff.control("fi", []).control("RE", []);
            } else {
                roff.control("TP", [])
                    .text([bold(term.as_str())])
                    .text([roman(text.as_str())]);
            }
        }
        if let Some(note) = section.note {
            roff.control("PP", []).text([roman(note)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let refs: Vec<String> = see_also.iter().map(|name| format!("{name}(1)")).collect();
    roff.text([roman(refs.join(", "))]);
    roff.to_writer(&mut page)?;
    page.flush()?;
    Ok((man.get_filename(), page))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page named `name`, as text.
    fn page<'a>(pages: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
        let (_, text) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no page {name}"));
        std::str::from_utf8(text).expect("UTF-8")
    }

    /// The codes of the EXIT STATUS section's `.TP` items (`\fB130, 143\fR`), in order.
    fn exit_codes(page: &str) -> Vec<u8> {
        let section = page
            .split(".SH \"EXIT STATUS\"\n")
            .nth(1)
            .expect("an EXIT STATUS section");
        let section = section.split("\n.SH ").next().unwrap_or_default();
        let lines: Vec<&str> = section.lines().collect();
        lines
            .windows(2)
            .filter(|pair| pair[0] == ".TP")
            .flat_map(|pair| {
                let term = pair[1].trim_start_matches("\\fB").trim_end_matches("\\fR");
                term.split(", ")
                    .map(|c| c.parse::<u8>().unwrap_or_else(|_| panic!("{:?}", pair[1])))
            })
            .collect()
    }

    #[test]
    fn one_page_per_subcommand_each_with_its_exit_status() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "oncefetch.1");
        for sub in [
            "plan",
            "run",
            "fetch",
            "status",
            "jobs",
            "ledger",
            "recover",
            "verify",
            "retry",
            "completions",
        ] {
            let name = format!("oncefetch-{sub}.1");
            let text = page(&pages, &name);
            assert!(text.contains(&format!("\n.TH oncefetch-{sub} 1 ")), "{name}: {text}");
            assert!(text.contains(".SH \"EXIT STATUS\""), "{name}: {text}");
            assert!(text.contains(".SH EXAMPLES"), "{name}");
            assert!(text.contains(&format!("oncefetch {sub}")), "{name}");
            assert!(text.contains("oncefetch(1)"), "{name} points to the top page");
            assert_eq!(
                exit_codes(text),
                help::exit_codes(Topic::from_name(sub).unwrap()),
                "{name}"
            );
        }
        assert!(!names.contains(&"oncefetch-help.1"), "no page for clap's help");
        let plan = page(&pages, "oncefetch-plan.1");
        assert!(plan.contains(".SH MANIFEST") && plan.contains("artifact_id"), "{plan}");
        assert!(!page(&pages, "oncefetch-status.1").contains(".SH MANIFEST"));
        let top = page(&pages, "oncefetch.1");
        let version = oncefetch::Cli::command().get_version().map(str::to_owned).unwrap();
        assert!(
            top.contains(&format!("\n.TH oncefetch 1  \"oncefetch {version}\"")),
            "{top}"
        );
        assert!(!top.contains("stores:"), "the plain version: {top}");
        assert_eq!(exit_codes(top), help::exit_codes(Topic::Top));
        assert!(top.contains("oncefetch\\-fetch(1)"), "{top}");
        assert!(top.contains("HTTPS_PROXY"), "{top}");
    }

    #[test]
    fn write_all_creates_the_folder_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man").join("man1");
        let written = write_all(&out).unwrap();
        assert_eq!(written.len(), 12, "{written:?}");
        for path in written {
            assert!(
                path.starts_with(&out) && fs::metadata(&path).unwrap().len() > 0,
                "{path:?}"
            );
        }
    }
}
