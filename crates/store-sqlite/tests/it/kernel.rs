//! The rules this store keeps in SQL for speed, pinned to core's kernel,
//! which defines them: the in-flight list of its generated column and the
//! runnable rule of its grant query.

use oncefetch_core::pins::RunnablePin;
use oncefetch_core::LeaseManager;
use rusqlite::named_params;

use crate::{fresh_db_path, SqliteStore};

const SHAPE: &str = "UPDATE jobs SET state = :state, retryable = :retryable, attempts = :attempts, \
     next_attempt_at = :next_attempt_at, lease_owner = :owner, lease_expires_at = :expires_at, epoch = :epoch \
     WHERE job_key = :job_key";

/// The grant picks exactly the jobs core's `kernel::runnable` calls
/// runnable, over every shape a row can take (core's `pins::RunnablePin`);
/// and the `in_flight` column of each row is core's `is_in_flight`.
#[tokio::test]
async fn the_grant_picks_what_the_kernel_calls_runnable() {
    let path = fresh_db_path();
    let store = SqliteStore::open(path.to_str().expect("utf-8")).await.expect("open");
    let pin = RunnablePin::plan(&store).await;
    let now = store.now().await.expect("now");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    for (job_key, shape) in pin.shapes() {
        conn.execute(
            SHAPE,
            named_params! {
                ":job_key": job_key,
                ":state": shape.state.as_str(),
                ":retryable": shape.retryable,
                ":attempts": shape.attempts,
                ":next_attempt_at": shape.next_attempt_in.map(|ms| now + ms),
                ":owner": shape.lease_in.map(|_| "someone"),
                ":expires_at": shape.lease_in.map(|ms| now + ms),
                ":epoch": shape.epoch(),
            },
        )
        .expect("shape");
        let in_flight: bool = conn
            .query_row("SELECT in_flight FROM jobs WHERE job_key = ?1", [job_key], |r| r.get(0))
            .expect("in_flight");
        assert_eq!(in_flight, shape.state.is_in_flight(), "in_flight of {}", shape.state);
    }
    drop(conn);
    pin.check(&store).await;
}
