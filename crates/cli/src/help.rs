//! The text after each command's options in `--help` (and in the man pages `cargo xtask man`
//! writes): its exit statuses (SPEC §7), the manifest fields (§1) for the commands that read one,
//! the environment it reads, and examples. Each item is written once here and composed per
//! command, so `plan` and `fetch` share the manifest table and every command the exit-status rows.

use std::fmt::Write as _;
use std::sync::OnceLock;

use clap::builder::styling::Styles;

use crate::exit;

/// Whose help: the top level or one subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `oncefetch` itself.
    Top,
    /// `oncefetch plan`.
    Plan,
    /// `oncefetch run`.
    Run,
    /// `oncefetch fetch`.
    Fetch,
    /// `oncefetch status`.
    Status,
    /// `oncefetch jobs`.
    Jobs,
    /// `oncefetch ledger`.
    Ledger,
    /// `oncefetch recover`.
    Recover,
    /// `oncefetch verify`.
    Verify,
    /// `oncefetch retry`.
    Retry,
    /// `oncefetch completions`.
    Completions,
    /// `oncefetch serve`.
    Serve,
}

use Topic::*;

impl Topic {
    /// Every topic, the top level first.
    pub const ALL: &'static [Topic] = &[
        Top,
        Plan,
        Run,
        Fetch,
        Status,
        Jobs,
        Ledger,
        Recover,
        Verify,
        Retry,
        Completions,
        Serve,
    ];

    /// The subcommand's name (`oncefetch` for the top level).
    pub fn name(self) -> &'static str {
        match self {
            Top => "oncefetch",
            Plan => "plan",
            Run => "run",
            Fetch => "fetch",
            Status => "status",
            Jobs => "jobs",
            Ledger => "ledger",
            Recover => "recover",
            Verify => "verify",
            Retry => "retry",
            Completions => "completions",
            Serve => "serve",
        }
    }

    /// The topic of a subcommand name, or of `oncefetch`.
    pub fn from_name(name: &str) -> Option<Topic> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Whether the command opens the ledger (and so logs, and reads `ONCEFETCH_DB`).
    fn opens_the_ledger(self) -> bool {
        self != Completions
    }
}

/// One titled part of the text: a lead paragraph, rows of a term and its explanation, and a
/// closing paragraph.
#[derive(Debug, Clone)]
pub struct Section {
    /// The heading (`Exit status`).
    pub title: &'static str,
    /// Said before the rows.
    pub lead: Option<&'static str>,
    /// Term and explanation (an exit code, a field, a variable; for examples a command line).
    pub rows: Vec<(String, String)>,
    /// Said after the rows.
    pub note: Option<&'static str>,
    /// The rows are examples: command lines, each explained.
    pub examples: bool,
}

/// Which commands an item applies to (the top level lists them all).
#[derive(Debug, Clone, Copy)]
enum Applies {
    /// Every command.
    All,
    /// Every command that opens the ledger.
    Ledger,
    /// Every command that opens the ledger but these.
    LedgerBut(&'static [Topic]),
    /// These commands (named at the top level).
    Only(&'static [Topic]),
}

impl Applies {
    fn to(self, topic: Topic) -> bool {
        match self {
            _ if topic == Top => true,
            Applies::All => true,
            Applies::Ledger => topic.opens_the_ledger(),
            Applies::LedgerBut(but) => topic.opens_the_ledger() && !but.contains(&topic),
            Applies::Only(topics) => topics.contains(&topic),
        }
    }
}

/// An exit-status row: the codes, what they mean, and where they can happen.
struct ExitRow {
    codes: &'static [u8],
    meaning: &'static str,
    applies: Applies,
}

/// The exit statuses (SPEC §7); 1 is composed from [`FATAL_CAUSES`].
const EXIT_ROWS: &[ExitRow] = &[
    ExitRow {
        codes: &[exit::OK],
        meaning: "all well",
        applies: Applies::All,
    },
    ExitRow {
        codes: &[exit::FATAL],
        meaning: "a fatal error",
        applies: Applies::All,
    },
    ExitRow {
        codes: &[exit::USAGE],
        meaning: "usage error: an unknown flag, a missing argument, a value that does not parse",
        applies: Applies::All,
    },
    ExitRow {
        codes: &[exit::REJECTED],
        meaning: "manifest lines were rejected, each named on stderr by line number and reason; the good \
                  lines are still planned",
        applies: Applies::Only(&[Plan, Fetch]),
    },
    ExitRow {
        codes: &[exit::FAILED],
        meaning: "jobs in the ledger ended FAILED (`oncefetch jobs --state FAILED` says why)",
        applies: Applies::Only(&[Run, Fetch]),
    },
    ExitRow {
        codes: &[exit::MISMATCH],
        meaning: "an artifact is missing or its bytes differ from the ledger's record",
        applies: Applies::Only(&[Verify]),
    },
    ExitRow {
        codes: &[exit::SIGINT, exit::SIGTERM],
        meaning: "interrupted by SIGINT (Ctrl-C) or SIGTERM, after giving the leases back and marking the \
                  running attempts, so a rerun resumes at once",
        applies: Applies::Only(&[Run, Fetch]),
    },
];

/// What makes a command exit 1, and which commands.
const FATAL_CAUSES: &[(&str, Applies)] = &[
    ("the ledger cannot be opened", Applies::Ledger),
    (
        "the ledger does not exist (only `plan` and `fetch` create one)",
        Applies::LedgerBut(&[Plan, Fetch]),
    ),
    ("the manifest cannot be read", Applies::Only(&[Plan, Fetch])),
    ("`--job` matches no job key or several", Applies::Only(&[Ledger, Retry])),
    (
        "the output folder is not writable or its path is not UTF-8",
        Applies::Only(&[Run, Fetch]),
    ),
    (
        "a resource error stopped the run (no space left, disk quota exceeded, a read-only \
         filesystem, no file descriptor left, the output folder gone); no job is charged for it",
        Applies::Only(&[Run, Fetch]),
    ),
    ("standard output cannot be written", Applies::Only(&[Completions])),
    (
        "the watch address is not loopback and no `--auth-token` is given, or it cannot be listened on",
        Applies::Only(&[Serve, Run, Fetch]),
    ),
];

/// The manifest fields (SPEC §1).
const MANIFEST_FIELDS: &[(&str, &str)] = &[
    ("work_id", "required: the work (paper, record) the artifact belongs to"),
    (
        "artifact_id",
        "required: the artifact within the work; it is saved as OUT/<work_id>/<artifact_id>",
    ),
    ("url", "required: http or https only"),
    (
        "sha256",
        "optional: the expected SHA-256, 64 hex digits; other bytes fail the job without retry",
    ),
    (
        "size",
        "optional: the expected size in bytes, a non-negative integer; another size fails the job \
         without retry",
    ),
    (
        "content_type",
        "optional: the expected media type, type/subtype or type/* (e.g. application/pdf); a response \
         whose Content-Type or first bytes do not fit (an HTML error page) fails the job without retry; \
         `run --accept` sets it for lines without one",
    ),
];

/// The variables the commands read.
const ENVIRONMENT: &[(&str, &str, Applies)] = &[
    ("ONCEFETCH_DB", "the ledger, as `--db` (the flag wins)", Applies::Ledger),
    (
        "ONCEFETCH_LOG",
        "log filter, e.g. `info`, `debug`, `warn,oncefetch_core=trace`; it replaces the level `-v`/`-q` pick",
        Applies::Ledger,
    ),
    (
        "NO_COLOR",
        "set and not empty: no colors in help, error messages and log lines (`--color always` wins)",
        Applies::All,
    ),
    (
        "ONCEFETCH_USER_AGENT",
        "the `User-Agent` sent, as `--user-agent` (the flag wins)",
        Applies::Only(&[Run, Fetch]),
    ),
    (
        "SSL_CERT_FILE",
        "a PEM file of CA certificates trusted instead of the system's store (the bundled roots and \
         `--ca-cert` still count)",
        Applies::Only(&[Run, Fetch]),
    ),
    (
        "SSL_CERT_DIR",
        "folders (`:`-separated) of PEM CA certificates trusted instead of the system's store",
        Applies::Only(&[Run, Fetch]),
    ),
    (
        "HTTPS_PROXY, HTTP_PROXY",
        "proxy for https, http URLs (`http://[user:pass@]host:port`); ALL_PROXY for both; lowercase \
         names work too",
        Applies::Only(&[Run, Fetch]),
    ),
    (
        "NO_PROXY",
        "comma-separated hosts, domains (with their subdomains), IPs or CIDR ranges reached without \
         the proxy; `*` for all",
        Applies::Only(&[Run, Fetch]),
    ),
    (
        "ONCEFETCH_AUTH_TOKEN",
        "the token of the status pages and `/metrics`, as `--auth-token` (the flag wins)",
        Applies::Only(&[Serve, Run, Fetch]),
    ),
];

/// Examples: a command line and what it does.
fn examples(topic: Topic) -> &'static [(&'static str, &'static str)] {
    match topic {
        Top => &[
            (
                "oncefetch fetch manifest.jsonl -o artifacts",
                "plan a manifest and download it into artifacts/ (again at any time: it carries on)",
            ),
            ("oncefetch status", "count the jobs in the ledger per state"),
            (
                "oncefetch completions bash > ~/.local/share/bash-completion/completions/oncefetch",
                "install bash completions",
            ),
        ],
        Plan => &[
            (
                "oncefetch plan manifest.jsonl",
                "record one job per line (again: nothing changes)",
            ),
            (
                "zcat manifest.jsonl.gz | oncefetch plan -",
                "a JSON Lines manifest from standard input",
            ),
            (
                "oncefetch plan --update-expected manifest.jsonl",
                "take the sha256/size the lines now declare",
            ),
        ],
        Run => &[
            (
                "oncefetch run -o artifacts -j 64 --per-host 4",
                "download every planned job, 64 at once, at most 4 per host",
            ),
            (
                "ONCEFETCH_DB=postgres://user:pass@db/oncefetch oncefetch run -o /data/artifacts",
                "one of many workers on many hosts sharing a PostgreSQL ledger",
            ),
            (
                "oncefetch run -o artifacts --rate-per-host 5/s --limit-rate 2M --hosts hosts.toml",
                "politely: 5 requests a second per host, 2 MB/s in all, hosts.toml's limits per host",
            ),
            (
                "oncefetch run -o artifacts --robots respect",
                "skip what each host's robots.txt disallows (its jobs fail without retry)",
            ),
        ],
        Fetch => &[
            ("oncefetch fetch manifest.jsonl -o artifacts", "plan, then download"),
            (
                "oncefetch fetch works.csv -o artifacts -j 32 --max-size 500MB",
                "a CSV manifest, 32 at once, nothing over 500 MB",
            ),
        ],
        Status => &[
            ("oncefetch status", "a table of the states and leases"),
            ("oncefetch status --json", "{\"total\":N,\"states\":{…},\"leases\":{…}}"),
        ],
        Jobs => &[
            (
                "oncefetch jobs --state FAILED",
                "the failed jobs, each with its last_error",
            ),
            (
                "oncefetch jobs --state FAILED | jq -r .last_error | sort | uniq -c",
                "the failures counted by reason",
            ),
        ],
        Ledger => &[
            (
                "oncefetch ledger --job 3f2a",
                "every operation of the job whose key starts with 3f2a",
            ),
            (
                "oncefetch ledger | jq -c 'select(.result_code != \"OK\")'",
                "the operations that did not succeed",
            ),
        ],
        Recover => &[
            (
                "oncefetch recover -o artifacts",
                "reconcile leases, abandoned operations, partial files and the files in artifacts/",
            ),
            (
                "oncefetch recover --stale-after 10m",
                "only leases expired ten minutes or more ago",
            ),
        ],
        Verify => &[
            (
                "oncefetch verify -o artifacts",
                "re-hash every finished artifact in artifacts/",
            ),
            (
                "oncefetch verify",
                "re-hash every finished artifact where the ledger recorded it",
            ),
        ],
        Retry => &[
            (
                "oncefetch retry",
                "requeue the retryable FAILED jobs, then `oncefetch run` again",
            ),
            (
                "oncefetch retry --host example.org --error 503",
                "only those of one host that failed with a 503",
            ),
            (
                "oncefetch retry --permanent --work W123",
                "every failed job of one work, 404s included",
            ),
        ],
        Completions => &[
            (
                "oncefetch completions bash > ~/.local/share/bash-completion/completions/oncefetch",
                "bash",
            ),
            (
                "oncefetch completions zsh > ~/.zfunc/_oncefetch",
                "zsh (with ~/.zfunc on $fpath)",
            ),
            (
                "oncefetch completions fish > ~/.config/fish/completions/oncefetch.fish",
                "fish",
            ),
            ("oncefetch completions powershell >> $PROFILE", "PowerShell"),
        ],
        Serve => &[
            (
                "oncefetch serve --db postgres://user:pass@db/oncefetch",
                "watch a fleet's shared ledger at http://127.0.0.1:8080/ until Ctrl-C",
            ),
            (
                "oncefetch serve --addr 0.0.0.0:8080 --auth-token \"$TOKEN\"",
                "for other hosts too: every request must carry the token",
            ),
            (
                "curl -s localhost:8080/api/status | jq .eta_seconds",
                "the JSON API: status, jobs, hosts",
            ),
        ],
    }
}

/// The exit codes `topic` can end with, in order.
pub fn exit_codes(topic: Topic) -> Vec<u8> {
    EXIT_ROWS
        .iter()
        .filter(|row| row.applies.to(topic))
        .flat_map(|row| row.codes.iter().copied())
        .collect()
}

/// The sections after the options of `topic`'s help.
pub fn sections(topic: Topic) -> Vec<Section> {
    let mut sections = Vec::new();
    if matches!(topic, Plan | Fetch) {
        sections.push(Section {
            title: "Manifest",
            lead: Some(
                "JSON Lines, one object per line; CSV with a header row when the name ends in `.csv`; \
                 `-` reads standard input. The fields:",
            ),
            rows: MANIFEST_FIELDS
                .iter()
                .map(|&(field, meaning)| (field.to_owned(), meaning.to_owned()))
                .collect(),
            note: Some(
                "A bad line is rejected with its line number and reason, and every good line is still \
                 planned. Planning the same manifest twice changes nothing.",
            ),
            examples: false,
        });
    }
    sections.push(Section {
        title: "Exit status",
        lead: None,
        rows: EXIT_ROWS
            .iter()
            .filter(|row| row.applies.to(topic))
            .map(|row| (codes_term(row.codes), exit_meaning(row, topic)))
            .collect(),
        note: None,
        examples: false,
    });
    sections.push(Section {
        title: "Environment",
        lead: None,
        rows: ENVIRONMENT
            .iter()
            .filter(|(_, _, applies)| applies.to(topic))
            .map(|&(name, meaning, applies)| (name.to_owned(), with_commands(meaning, applies, topic)))
            .collect(),
        note: None,
        examples: false,
    });
    sections.push(Section {
        title: "Examples",
        lead: None,
        rows: examples(topic)
            .iter()
            .map(|&(line, does)| (line.to_owned(), does.to_owned()))
            .collect(),
        note: None,
        examples: true,
    });
    sections
}

/// `130, 143`.
fn codes_term(codes: &[u8]) -> String {
    codes.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")
}

/// A row's meaning for `topic`: exit 1 lists its causes there; 4 wins over 3 where both apply.
fn exit_meaning(row: &ExitRow, topic: Topic) -> String {
    let mut meaning = row.meaning.to_owned();
    // At the top level each cause names its commands.
    if row.codes == [exit::FATAL] {
        let causes: Vec<String> = FATAL_CAUSES
            .iter()
            .filter(|(_, applies)| applies.to(topic))
            .map(|&(cause, applies)| with_commands(cause, applies, topic))
            .collect();
        meaning = format!("{meaning}: {}", causes.join("; "));
    }
    if row.codes == [exit::FAILED] && exit_codes(topic).contains(&exit::REJECTED) {
        meaning.push_str("; wins over 3");
    }
    with_commands(&meaning, row.applies, topic)
}

/// At the top level, `meaning` followed by the commands it applies to, unless all.
fn with_commands(meaning: &str, applies: Applies, topic: Topic) -> String {
    match (topic, applies) {
        (Top, Applies::Only(topics)) => {
            let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
            format!("{meaning} ({})", names.join(", "))
        }
        _ => meaning.to_owned(),
    }
}

/// Text width of the sections, as `max_term_width` sets for clap's part.
const WIDTH: usize = 100;

/// A term column no wider than this; a longer term puts its explanation on the next line.
const TERM_WIDTH: usize = 24;

/// `--help`'s text after the options: every section of `topic`, headed like clap's own.
pub(crate) fn after_long_help(topic: Topic) -> String {
    let header = *Styles::default().get_header();
    let mut text = String::new();
    for (i, section) in sections(topic).iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let _ = writeln!(text, "{header}{}:{header:#}", section.title);
        if let Some(lead) = section.lead {
            push_wrapped(&mut text, lead, 2, 2);
        }
        if section.examples {
            for (line, does) in &section.rows {
                push_wrapped(&mut text, &format!("# {does}"), 2, 4);
                let _ = writeln!(text, "  {line}");
            }
        } else {
            let term_width = section
                .rows
                .iter()
                .map(|(term, _)| term.chars().count())
                .filter(|&w| w <= TERM_WIDTH)
                .max()
                .unwrap_or(0);
            let indent = 2 + term_width + 2;
            for (term, meaning) in &section.rows {
                let width = term.chars().count();
                if width > TERM_WIDTH {
                    let _ = writeln!(text, "  {term}");
                    push_wrapped(&mut text, meaning, indent, indent);
                } else {
                    let mut lines = wrap(meaning, WIDTH - indent).into_iter();
                    let first = lines.next().unwrap_or_default();
                    let _ = writeln!(text, "  {term}{}{first}", " ".repeat(term_width - width + 2));
                    for line in lines {
                        let _ = writeln!(text, "{}{line}", " ".repeat(indent));
                    }
                }
            }
        }
        if let Some(note) = section.note {
            push_wrapped(&mut text, note, 2, 2);
        }
    }
    text
}

/// `-h`'s text after the options: the exit codes, and what else `--help` shows.
pub(crate) fn after_help(topic: Topic) -> String {
    let others: Vec<String> = sections(topic)
        .iter()
        .map(|s| s.title.to_lowercase())
        .filter(|t| t != "exit status")
        .collect();
    let shown = match others.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    format!(
        "Exit status: {} (`--help` explains them, and shows the {shown}).",
        codes_term(&exit_codes(topic))
    )
}

/// `text` wrapped at [`WIDTH`], the first line indented `first`, the others `rest`.
fn push_wrapped(out: &mut String, text: &str, first: usize, rest: usize) {
    for (i, line) in wrap(text, WIDTH - rest).iter().enumerate() {
        let indent = if i == 0 { first } else { rest };
        let _ = writeln!(out, "{}{line}", " ".repeat(indent));
    }
}

/// `text`'s words in lines of at most `width` characters (a longer word alone on its line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `--version`: the version, then the stores (`--db` backends) and fetchers (URL schemes of the
/// manifest) compiled in, e.g. `0.1.0 (stores: postgres, sqlite; fetchers: http, https)`.
pub(crate) fn long_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let stores: Vec<&str> = oncefetch_core::registry::store_factories()
            .iter()
            .map(|f| f.name)
            .collect();
        let mut fetchers: Vec<&str> = oncefetch_core::registry::fetcher_factories()
            .iter()
            .flat_map(|f| f.schemes.iter().copied())
            .collect();
        fetchers.sort_unstable();
        fetchers.dedup();
        let list = |names: Vec<&str>| match names.join(", ") {
            s if s.is_empty() => "none".to_owned(),
            s => s,
        };
        format!(
            "{} (stores: {}; fetchers: {})",
            env!("CARGO_PKG_VERSION"),
            list(stores),
            list(fetchers)
        )
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use clap::builder::StyledStr;

    use super::*;
    use crate::Cli;

    #[test]
    fn every_subcommand_has_a_topic_and_every_topic_a_command() {
        let cli = Cli::command();
        let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        for name in &names {
            assert!(Topic::from_name(name).is_some(), "{name} has no help topic");
        }
        for topic in Topic::ALL {
            assert!(
                *topic == Top || names.contains(&topic.name()),
                "{topic:?} is no subcommand"
            );
        }
    }

    /// The text of `cmd`'s `--help` after its options, without styles.
    fn shown(cmd: &clap::Command) -> String {
        cmd.get_after_long_help().map(ToString::to_string).unwrap_or_default()
    }

    /// `text` without styles.
    fn plain(text: String) -> String {
        StyledStr::from(text).to_string()
    }

    #[test]
    fn each_command_shows_its_own_sections() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            let topic = Topic::from_name(sub.get_name()).unwrap();
            assert_eq!(shown(sub), plain(after_long_help(topic)), "{}", sub.get_name());
        }
        assert_eq!(shown(&cli), plain(after_long_help(Top)));
    }

    #[test]
    fn lines_fit_the_width() {
        for &topic in Topic::ALL {
            for line in plain(after_long_help(topic)).lines() {
                assert!(
                    line.chars().count() <= WIDTH,
                    "{topic:?}: {} > {WIDTH}: {line}",
                    line.chars().count()
                );
            }
        }
    }

    #[test]
    fn wrap_breaks_between_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 6), Vec::<String>::new());
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
    }

    #[test]
    fn exit_codes_per_command() {
        assert_eq!(exit_codes(Top), [0, 1, 2, 3, 4, 5, 130, 143]);
        assert_eq!(exit_codes(Plan), [0, 1, 2, 3]);
        assert_eq!(exit_codes(Fetch), [0, 1, 2, 3, 4, 130, 143]);
        assert_eq!(exit_codes(Verify), [0, 1, 2, 5]);
        assert_eq!(exit_codes(Status), [0, 1, 2]);
    }
}
