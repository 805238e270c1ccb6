//! The rules this store keeps in SQL for speed, pinned to core's kernel, which
//! defines them: the state lists its queries and indexes name, and the
//! runnable rule of its set-based grant.

use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use oncefetch_core::pins::RunnablePin;
use oncefetch_core::JobState;

use crate::support::{fresh_store, raw_connection, require_postgres, schema_of};

#[derive(QueryableByName, Debug)]
struct Lists {
    #[diesel(sql_type = Bool)]
    in_flight: bool,
    #[diesel(sql_type = Bool)]
    before_body: bool,
}

#[tokio::test]
async fn the_state_lists_of_the_sql_are_cores() {
    let base = require_postgres!();
    let (_store, url) = fresh_store(&base).await;
    let mut conn = raw_connection(&base, &schema_of(&url)).await;
    for state in JobState::ALL {
        let lists: Lists = diesel::sql_query("SELECT in_flight($1), before_body($1)")
            .bind::<Text, _>(state.as_str())
            .get_result(&mut conn)
            .await
            .expect("lists");
        assert_eq!(lists.in_flight, state.is_in_flight(), "in_flight({state})");
        assert_eq!(lists.before_body, state.before_body(), "before_body({state})");
    }
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

async fn plan_of(conn: &mut AsyncPgConnection, query: &str) -> String {
    let lines: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN {query}"))
        .load(conn)
        .await
        .expect("explain");
    lines.into_iter().map(|l| l.line).collect::<Vec<_>>().join("\n")
}

/// The partial indexes over in-flight jobs serve queries that name
/// `in_flight(state)`: the planner inlines the function, so the query's
/// predicate proves the index's. With sequential scans off, a query that
/// could not use the index would still plan a sequential scan.
#[tokio::test]
async fn the_in_flight_indexes_serve_queries_that_name_in_flight() {
    let base = require_postgres!();
    let (_store, url) = fresh_store(&base).await;
    let mut conn = raw_connection(&base, &schema_of(&url)).await;
    diesel::sql_query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .expect("set");
    let expiry = plan_of(
        &mut conn,
        "SELECT job_key FROM jobs WHERE in_flight(state) AND lease_expires_at <= now()",
    )
    .await;
    assert!(expiry.contains("jobs_in_flight"), "{expiry}");
    let by_url = plan_of(
        &mut conn,
        "SELECT 1 FROM jobs WHERE canonical_url = 'u' AND in_flight(state) AND lease_owner IS NOT NULL",
    )
    .await;
    assert!(by_url.contains("jobs_live_url"), "{by_url}");
}

const SHAPE: &str = "UPDATE jobs SET state = $2, retryable = $3, attempts = $4, \
     next_attempt_at = now() + $5 * interval '1 millisecond', \
     lease_owner = CASE WHEN $6::bigint IS NULL THEN NULL ELSE 'someone' END, \
     lease_expires_at = now() + $6 * interval '1 millisecond', epoch = $7 \
     WHERE job_key = $1";

/// This store's grant, one SQL statement, picks exactly the jobs core's
/// `kernel::runnable` calls runnable, over every shape a row can take
/// (core's `pins::RunnablePin`).
#[tokio::test]
async fn the_grant_picks_what_the_kernel_calls_runnable() {
    let base = require_postgres!();
    let (store, url) = fresh_store(&base).await;
    let mut conn = raw_connection(&base, &schema_of(&url)).await;
    let pin = RunnablePin::plan(store.as_ref()).await;
    for (job_key, shape) in pin.shapes() {
        diesel::sql_query(SHAPE)
            .bind::<Text, _>(job_key)
            .bind::<Text, _>(shape.state.as_str())
            .bind::<Bool, _>(shape.retryable)
            .bind::<Integer, _>(i32::try_from(shape.attempts).expect("attempts"))
            .bind::<Nullable<BigInt>, _>(shape.next_attempt_in)
            .bind::<Nullable<BigInt>, _>(shape.lease_in)
            .bind::<BigInt, _>(shape.epoch())
            .execute(&mut conn)
            .await
            .expect("shape");
    }
    pin.check(store.as_ref()).await;
}
