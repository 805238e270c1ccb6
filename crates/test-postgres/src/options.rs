//! What a [`Server`] is made with: its binaries, the user it runs as, its
//! settings and the label of its folder.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::Server;

/// How to make a [`Server`]; [`Options::start`] makes it.
///
/// ```no_run
/// let mut server = oncefetch_test_postgres::Options::new("/usr/lib/postgresql/15/bin")
///     .run_as("postgres")
///     .setting("fsync=off")
///     .label("example")
///     .start()?;
/// let url = server.create_database("example")?;
/// server.restart()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) bindir: PathBuf,
    pub(crate) run_as: Option<String>,
    pub(crate) settings: Vec<String>,
    pub(crate) label: String,
}

impl Options {
    /// A server made with the binaries in `bindir` (`initdb`, `postgres`,
    /// `pg_isready`, `createdb`), run as the current user, with PostgreSQL's
    /// default settings, in a folder labelled `server`.
    pub fn new(bindir: impl Into<PathBuf>) -> Self {
        Self {
            bindir: bindir.into(),
            run_as: None,
            settings: Vec::new(),
            label: "server".to_owned(),
        }
    }

    /// Runs `initdb` and the server as `user` (through runuser(1), so the
    /// caller must be root; `initdb` refuses to run as root).
    pub fn run_as(mut self, user: impl Into<String>) -> Self {
        self.run_as = Some(user.into());
        self
    }

    /// Adds a `-c NAME=VALUE` server setting. `listen_addresses` is always
    /// `127.0.0.1`, whatever is set here.
    pub fn setting(mut self, setting: impl Into<String>) -> Self {
        self.settings.push(setting.into());
        self
    }

    /// Names the server's folder `oncefetch-pg-LABEL-PID-N` (keep it short:
    /// the server's socket lives there).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Initializes a cluster in a new temporary folder and starts its server
    /// on a free loopback port; waits (bounded) until it accepts connections.
    pub fn start(self) -> io::Result<Server> {
        Server::start(self)
    }

    /// `program` of the binaries, run as the server's user.
    pub(crate) fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }
}
