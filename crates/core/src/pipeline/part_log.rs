//! The ledger as a destination's [`PartLog`]: each record is a finished
//! STREAM row under the job's epoch, written through the job's fence (so a
//! stale epoch cannot write one), its result `{"destination": KEY, "state": …}`.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::destination::PartLog;
use crate::key::{op_key, KeyValue};
use crate::lease::Fence;
use crate::ledger::{run_effect, EffectError, OpKind, OpQuery, ResultCode};
use crate::store::Store;

/// One job's epoch, writing through its fence.
#[derive(Debug)]
pub(crate) struct LedgerLog {
    store: Arc<dyn Store>,
    fence: Fence,
    job_key: String,
    epoch: i64,
    lost: Arc<AtomicBool>,
}

impl LedgerLog {
    /// The log of the epoch `fence` holds; `lost` is its lease keeper's flag.
    pub(crate) fn fenced(store: Arc<dyn Store>, fence: Fence, lost: Arc<AtomicBool>) -> Self {
        Self {
            job_key: fence.job_key.clone(),
            epoch: fence.epoch,
            store,
            fence,
            lost,
        }
    }
}

fn ledger_error(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("ledger: {err}"))
}

#[async_trait]
impl PartLog for LedgerLog {
    async fn record(&self, key: &str, state: Value) -> io::Result<()> {
        self.check()?;
        let fence = &self.fence;
        let op_key = op_key(
            OpKind::Stream.as_str(),
            &self.job_key,
            &[
                ("destination", KeyValue::Str(key)),
                ("epoch", KeyValue::Int(self.epoch)),
            ],
        );
        let result = json!({ "destination": key, "state": state });
        // The effect is the record itself: replayed when it is there.
        let recorded = run_effect(self.store.as_ref(), fence, &op_key, OpKind::Stream, || async {
            Ok::<_, Infallible>(result)
        });
        match recorded.await {
            Ok(_) => Ok(()),
            Err(EffectError::Store(err)) => Err(ledger_error(err)),
            Err(EffectError::Effect(never)) => match never {},
        }
    }

    async fn records(&self) -> io::Result<Vec<(i64, Value)>> {
        stream_records(self.store.as_ref(), &self.job_key).await
    }

    fn epoch(&self) -> i64 {
        self.epoch
    }

    fn check(&self) -> io::Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!(
                "epoch {} of job {} lost its lease",
                self.epoch, self.job_key
            )));
        }
        Ok(())
    }
}

/// One job's [`PartLog`] records in the ledger, `(epoch, state)`, oldest
/// first: what a destination reads back outside a job's epoch (`verify
/// --quick`, `recover`). Rows superseded by a requeue carry
/// `"superseded": true`.
pub async fn stream_records(store: &dyn Store, job_key: &str) -> io::Result<Vec<(i64, Value)>> {
    let query = OpQuery {
        job_key: Some(job_key.to_owned()),
        after_seq: None,
        limit: 0,
    };
    let rows = store.ops(&query).await.map_err(ledger_error)?;
    Ok(rows
        .into_iter()
        .filter(|row| row.kind == OpKind::Stream)
        .filter_map(|row| {
            let superseded = match row.result_code? {
                ResultCode::Ok => false,
                ResultCode::Abandoned => true,
                ResultCode::Error => return None,
            };
            let result = row.result?;
            result.get("destination")?;
            let mut state = result.get("state")?.clone();
            if superseded {
                state
                    .as_object_mut()?
                    .insert("superseded".to_owned(), Value::Bool(true));
            }
            Some((row.epoch, state))
        })
        .collect())
}
