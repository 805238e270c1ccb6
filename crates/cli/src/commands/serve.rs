//! `serve [--addr ADDR] [--auth-token TOKEN]`: the status pages and JSON API
//! over the ledger, read-only, until a signal ends the process.

use std::sync::Arc;

use oncefetch_core::url::redact;
use oncefetch_core::Store;

use crate::cli::ServeArgs;
use crate::exit;
use crate::serve::{check_bind, Server, Site};

/// Serves until interrupted (SIGINT and SIGTERM exit with 130 and 143).
pub(crate) async fn run(store: Arc<dyn Store>, args: &ServeArgs, db: &str) -> anyhow::Result<u8> {
    check_bind(args.addr, args.auth_token.as_deref())?;
    let site = Site {
        store,
        exporter: None,
        token: args.auth_token.clone(),
        max_attempts: args.max_attempts,
        refresh: args.refresh,
        source: redact(db).into_owned(),
    };
    let server = Server::start(args.addr, site).await?;
    eprintln!("status pages at http://{}/", server.addr());
    server.wait().await;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn serve_binds_loopback_by_default() {
        let cli = Cli::try_parse_from(["oncefetch", "serve"]).expect("parse");
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert!(args.addr.ip().is_loopback(), "{}", args.addr);
        assert_eq!((args.addr.port(), args.auth_token), (8080, None));
    }
}
