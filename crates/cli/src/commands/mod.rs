//! One module per subcommand.

pub(crate) mod jobs;
pub(crate) mod ledger;
pub(crate) mod plan;
pub(crate) mod recover;
pub(crate) mod retry;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod verify;

use std::sync::Arc;

use oncefetch_core::Store;

use crate::cli::FetchArgs;
use crate::exit;
use crate::signals::Signals;

/// `fetch`: plan, then run; FAILED jobs (4) win over rejected lines (3).
pub(crate) async fn fetch(
    store: Arc<dyn Store>,
    args: &FetchArgs,
    interactive: bool,
    signals: &Signals,
) -> anyhow::Result<u8> {
    let planned = plan::run(&store, &args.manifest, false).await?;
    let ran = run::run(store, &args.run, interactive, signals).await?;
    Ok(if ran != exit::OK { ran } else { planned })
}
