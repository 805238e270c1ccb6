//! The hot queries, one SQL file each under `sql/queries/`; each doc is the
//! file's leading comment.

/// At a grant: every unfinished attempt of the job under an older epoch.
pub(crate) const ABANDON_OLD_EPOCHS: &str = include_str!("../sql/queries/abandon_old_epochs.sql");
/// The first stored copy of some content.
pub(crate) const ARTIFACT_GET: &str = include_str!("../sql/queries/artifact_get.sql");
/// Indexes content unless its hash is indexed already (first writer wins).
pub(crate) const ARTIFACT_INSERT: &str = include_str!("../sql/queries/artifact_insert.sql");
/// Ends a job a grant found out of attempts (its lease expired before its body
/// was in): FAILED, not retryable, under the next epoch, with no lease.
pub(crate) const FAIL_OUT_OF_ATTEMPTS: &str = include_str!("../sql/queries/fail_out_of_attempts.sql");
/// The sum of the sizes of the SUCCESS jobs, from the counters.
pub(crate) const BYTES_DONE: &str = include_str!("../sql/queries/bytes_done.sql");
/// Grants a job: LEASED under the next epoch (the caller read the row in this
/// transaction and builds the granted job from it).
pub(crate) const GRANT: &str = include_str!("../sql/queries/grant.sql");
/// Records a job's expectations (plan --update-expected).
pub(crate) const EXPECTED_UPDATE: &str = include_str!("../sql/queries/expected_update.sql");
/// The expectations a job records: read back at planning only for a line
/// that declares some and whose job key was already present.
pub(crate) const JOB_EXPECTED: &str = include_str!("../sql/queries/job_expected.sql");
/// The lease columns of one job, for a fence check, and its planned_seq.
pub(crate) const JOB_FENCE: &str = include_str!("../sql/queries/job_fence.sql");
/// One job (column order: see rows.rs), and its rowid for the write that
/// follows.
pub(crate) const JOB_GET: &str = include_str!("../sql/queries/job_get.sql");
/// Writes a job's state, attempts and recorded fields after a fenced, checked
/// commit that left the lease, backoff and error columns alone. It sets no
/// indexed column, so a step between in-flight states rewrites only the row.
pub(crate) const JOB_STEP: &str = include_str!("../sql/queries/job_step.sql");
/// Writes a job's mutable columns after a fenced, checked commit.
pub(crate) const JOB_UPDATE: &str = include_str!("../sql/queries/job_update.sql");
/// A later page of jobs in key order (keyset pagination), optionally of one state.
pub(crate) const JOBS_AFTER: &str = include_str!("../sql/queries/jobs_after.sql");
/// Jobs of one canonical URL in key order, optionally of one state and after a
/// key. Only SUCCESS jobs are indexed by URL (jobs_success_by_url.sql): this
/// query reads the whole table.
pub(crate) const JOBS_BY_URL: &str = include_str!("../sql/queries/jobs_by_url.sql");
/// The first page of jobs in key order, optionally of one state.
pub(crate) const JOBS_FIRST_PAGE: &str = include_str!("../sql/queries/jobs_first_page.sql");
/// The SUCCESS jobs of one canonical URL in key order, optionally after a key:
/// the original a twin is skipped as a duplicate of.
pub(crate) const JOBS_SUCCESS_BY_URL: &str = include_str!("../sql/queries/jobs_success_by_url.sql");
/// A host's next free request time, if it has claimed any.
pub(crate) const HOST_BUDGET_GET: &str = include_str!("../sql/queries/host_budget_get.sql");
/// Records a host's next free request time after a claim.
pub(crate) const HOST_BUDGET_SET: &str = include_str!("../sql/queries/host_budget_set.sql");
/// In-flight jobs held by a live lease: one range of jobs_lease_expiry.
pub(crate) const LIVE_LEASES: &str = include_str!("../sql/queries/live_leases.sql");
/// Records a recovery action as an OK row, once per op key.
pub(crate) const NOTE_INSERT: &str = include_str!("../sql/queries/note_insert.sql");
/// The store clock: this host's wall clock in milliseconds, as SQLite reads it.
pub(crate) const NOW: &str = include_str!("../sql/queries/now.sql");
/// The last seq of the ledger (0 when empty).
pub(crate) const OPS_LAST_SEQ: &str = include_str!("../sql/queries/ops_last_seq.sql");
/// Every attempt of one op key, the result read from its OK row only: both
/// facts a commit needs of an op key in one search.
pub(crate) const OP_FACTS: &str = include_str!("../sql/queries/op_facts.sql");
/// Finishes a running attempt.
pub(crate) const OP_FINISH: &str = include_str!("../sql/queries/op_finish.sql");
/// Records an attempt (running when result_code is NULL).
pub(crate) const OP_INSERT: &str = include_str!("../sql/queries/op_insert.sql");
/// One job's ledger rows in order, after a seq.
pub(crate) const OPS_BY_JOB: &str = include_str!("../sql/queries/ops_by_job.sql");
/// Ledger rows in order, after a seq.
pub(crate) const OPS_PAGE: &str = include_str!("../sql/queries/ops_page.sql");
/// Jobs that `run` still waits for: PLANNED, in flight (leased or not), or
/// FAILED with a retry left; one partial index each.
pub(crate) const OUTSTANDING: &str = include_str!("../sql/queries/outstanding.sql");
/// Plans jobs; a job key already present is left as it is. The code appends
/// one `(?, ?, ?, ?, ?, ?, ?)` tuple per job to this head.
pub(crate) const PLAN_INSERT: &str = include_str!("../sql/queries/plan_insert.sql");
/// Counts the leases that expired after the reconcile mark and at or before
/// the cutoff: one range of jobs_lease_expiry, read from the index alone (only
/// an in-flight job holds a lease: leaving flight clears it). The caller then
/// moves the mark to the cutoff.
pub(crate) const RECONCILE_LEASES: &str = include_str!("../sql/queries/reconcile_leases.sql");
/// The reconcile mark: leases that expired at or before it were freed.
pub(crate) const RECONCILE_MARK_GET: &str = include_str!("../sql/queries/reconcile_mark_get.sql");
/// Moves the reconcile mark forward to the cutoff (never back).
pub(crate) const RECONCILE_MARK_MOVE: &str = include_str!("../sql/queries/reconcile_mark_move.sql");
/// Abandons every unfinished attempt that no live lease at its epoch covers.
/// The live leases (few) are read once into a set, and the unfinished
/// attempts are visited in ledger order, so the pass reads and writes each
/// page once and does no lookup per row.
pub(crate) const RECONCILE_OPS: &str = include_str!("../sql/queries/reconcile_ops.sql");
/// Gives back a live lease held by this owner at this epoch.
pub(crate) const RELEASE: &str = include_str!("../sql/queries/release.sql");
/// Extends a live lease held by this owner at this epoch.
pub(crate) const RENEW: &str = include_str!("../sql/queries/renew.sql");
/// Sends a job back to PLANNED as freshly planned, keeping its epoch.
pub(crate) const REQUEUE: &str = include_str!("../sql/queries/requeue.sql");
/// At a filtered requeue: every job with a REQUEUE row after the mark goes
/// back to PLANNED as freshly planned.
pub(crate) const REQUEUE_MARKED: &str = include_str!("../sql/queries/requeue_marked.sql");
/// The jobs a filtered requeue takes (one range of jobs_not_in_flight,
/// narrowed), each with the count of OK effect rows it supersedes and its
/// planned_seq.
pub(crate) const REQUEUE_SELECT: &str = include_str!("../sql/queries/requeue_select.sql");
/// At a filtered requeue: the OK effect rows of every job with a REQUEUE row
/// after the mark become ABANDONED.
pub(crate) const REQUEUE_SUPERSEDE_MARKED: &str = include_str!("../sql/queries/requeue_supersede_marked.sql");
/// Runnable jobs whose canonical URL no live lease holds, in batch order.
/// Column order: see rows.rs (the job, then its rowid). The order a batch takes them in:
///   1. in-flight jobs whose lease was released,
///   2. in-flight jobs whose lease expired, reconciled or not (they hold work
///      already done),
///   3. retryable FAILED jobs with attempts left, past their backoff,
///   4. PLANNED jobs in planning order.
///
/// Each arm is one range of a partial index, so live leases and settled jobs
/// are never scanned; the compound stops at :limit rows.
pub(crate) const RUNNABLE: &str = include_str!("../sql/queries/runnable.sql");
/// Retryable FAILED jobs by attempts used, and those of them waiting out a
/// backoff: jobs_failed_retryable alone.
pub(crate) const RETRYABLE_FAILED: &str = include_str!("../sql/queries/retryable_failed.sql");
/// Jobs per state (states with no job are absent; a state may come twice, to
/// be summed): settled and PLANNED jobs from the counters of watch_hosts,
/// leased and unleased in-flight jobs from their partial indexes.
pub(crate) const STATUS: &str = include_str!("../sql/queries/status.sql");
/// At a requeue: the job's OK rows of effect kinds (OpKind::is_effect) become
/// ABANDONED so the effects run again instead of replaying stale results.
pub(crate) const SUPERSEDE_EFFECTS: &str = include_str!("../sql/queries/supersede_effects.sql");

/// Each host's jobs by group, the busiest `:limit` hosts.
pub(crate) const WATCH_HOSTS: &str = include_str!("../sql/queries/watch_hosts.sql");
/// Counts the jobs one insert of a plan batch inserted, per host.
pub(crate) const WATCH_PLAN_COUNT: &str = include_str!("../sql/queries/watch_plan_count.sql");
/// Adds a plan batch's new jobs of one host.
pub(crate) const WATCH_PLAN_HOST: &str = include_str!("../sql/queries/watch_plan_host.sql");
/// Finishes per minute and host from `:since` on.
pub(crate) const WATCH_MINUTES: &str = include_str!("../sql/queries/watch_minutes.sql");
/// The first FAILED jobs in planning order.
pub(crate) const WATCH_FAILED: &str = include_str!("../sql/queries/watch_failed.sql");
/// In-flight jobs by lease expiry after `:after`.
pub(crate) const WATCH_LEASES: &str = include_str!("../sql/queries/watch_leases.sql");
/// Lease owners seen after `:after`.
pub(crate) const WATCH_WORKERS: &str = include_str!("../sql/queries/watch_workers.sql");

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn explain(conn: &Connection, sql: &str, query_plan: bool) -> Vec<String> {
        let prefix = if query_plan { "EXPLAIN QUERY PLAN" } else { "EXPLAIN" };
        let column = if query_plan { 3 } else { 1 };
        let mut stmt = conn.prepare(&format!("{prefix} {sql}")).expect("explain");
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().expect("row") {
            out.push(row.get::<_, String>(column).expect("text"));
        }
        out
    }

    /// Each hot query searches the index meant for it (never a whole table),
    /// and no hot statement builds a temporary table per execution (a
    /// constant `IN` list of more than two values does).
    #[test]
    fn hot_queries_use_their_indexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = crate::options::SqliteOptions::new(dir.path().join("plans.db"));
        let conn = crate::conn::set_up(&options).expect("open");
        let by_key = "sqlite_autoindex_jobs_1 (job_key=?)";
        let by_rowid = "INTEGER PRIMARY KEY (rowid=?)";
        let expected: &[(&str, &str, &[&str])] = &[
            ("job_get", JOB_GET, &[by_key]),
            ("job_fence", JOB_FENCE, &[by_key]),
            ("job_expected", JOB_EXPECTED, &[by_key]),
            ("expected_update", EXPECTED_UPDATE, &[by_rowid]),
            ("job_step", JOB_STEP, &[by_rowid]),
            ("job_update", JOB_UPDATE, &[by_rowid]),
            ("grant", GRANT, &[by_rowid]),
            ("renew", RENEW, &[by_key]),
            ("release", RELEASE, &[by_key]),
            ("requeue", REQUEUE, &[by_rowid]),
            (
                "requeue_select",
                REQUEUE_SELECT,
                &["jobs_not_in_flight (state=?)", "ops_job_op (job_seq=?)"],
            ),
            (
                "requeue_supersede_marked",
                REQUEUE_SUPERSEDE_MARKED,
                &["ops_job_op (job_seq=?)", "INTEGER PRIMARY KEY (rowid>?)"],
            ),
            (
                "requeue_marked",
                REQUEUE_MARKED,
                &[by_key, "INTEGER PRIMARY KEY (rowid>?)"],
            ),
            (
                "live_leases",
                LIVE_LEASES,
                &["COVERING INDEX jobs_lease_expiry (lease_expires_at>?)"],
            ),
            ("bytes_done", BYTES_DONE, &["SCAN watch_hosts"]),
            (
                "retryable_failed",
                RETRYABLE_FAILED,
                &["COVERING INDEX jobs_failed_retryable"],
            ),
            (
                "runnable",
                RUNNABLE,
                &[
                    "jobs_unleased_in_flight",
                    "jobs_lease_expiry (lease_expires_at>? AND lease_expires_at<?)",
                    "jobs_failed_retryable (attempts<?)",
                    "jobs_not_in_flight (state=?)",
                    "jobs_leased_url (canonical_url=?)",
                ],
            ),
            (
                "jobs_success_by_url",
                JOBS_SUCCESS_BY_URL,
                &["jobs_success_url (canonical_url=?)"],
            ),
            ("jobs_after", JOBS_AFTER, &["sqlite_autoindex_jobs_1 (job_key>?)"]),
            (
                "status",
                STATUS,
                &["SCAN watch_hosts", "jobs_lease_expiry", "jobs_unleased_in_flight"],
            ),
            ("watch_failed", WATCH_FAILED, &["jobs_not_in_flight (state=?)"]),
            (
                "watch_leases",
                WATCH_LEASES,
                &["jobs_lease_expiry (lease_expires_at>?)"],
            ),
            (
                "watch_workers",
                WATCH_WORKERS,
                &["jobs_lease_expiry (lease_expires_at>?)"],
            ),
            ("watch_minutes", WATCH_MINUTES, &["PRIMARY KEY (minute>?)"]),
            ("watch_plan_count", WATCH_PLAN_COUNT, &["INTEGER PRIMARY KEY (rowid>?)"]),
            (
                "outstanding",
                OUTSTANDING,
                &[
                    "jobs_not_in_flight",
                    "jobs_lease_expiry",
                    "jobs_unleased_in_flight",
                    "jobs_failed_retryable",
                ],
            ),
            (
                "reconcile_leases",
                RECONCILE_LEASES,
                &["COVERING INDEX jobs_lease_expiry (lease_expires_at>? AND lease_expires_at<?)"],
            ),
            (
                "reconcile_ops",
                RECONCILE_OPS,
                &["ops_unfinished", "jobs_lease_expiry (lease_expires_at>?)"],
            ),
            ("abandon_old_epochs", ABANDON_OLD_EPOCHS, &["ops_job_op (job_seq=?)"]),
            ("op_facts", OP_FACTS, &["ops_job_op (job_seq=? AND op_key=?)"]),
            ("op_finish", OP_FINISH, &["INTEGER PRIMARY KEY (rowid=?)"]),
            ("ops_by_job", OPS_BY_JOB, &["ops_job_op (job_seq=?)"]),
            ("ops_page", OPS_PAGE, &["INTEGER PRIMARY KEY (rowid>?)"]),
            ("supersede_effects", SUPERSEDE_EFFECTS, &["ops_job_op (job_seq=?)"]),
            ("artifact_get", ARTIFACT_GET, &["PRIMARY KEY (sha256=?)"]),
        ];
        for (name, sql, needles) in expected {
            let plan = explain(&conn, sql, true).join("\n");
            for needle in *needles {
                assert!(plan.contains(needle), "{name} should use {needle}:\n{plan}");
            }
            for line in plan.lines() {
                let whole_table =
                    (line.starts_with("SCAN jobs") || line.starts_with("SCAN ops")) && !line.contains("INDEX");
                assert!(!whole_table, "{name} scans a whole table:\n{plan}");
            }
            // Status groups the few in-flight jobs (and the workers seen
            // their owners, a plan batch its new jobs' hosts); one URL has
            // few jobs to sort, and one job few ledger rows.
            assert!(
                !plan.contains("TEMP B-TREE")
                    || matches!(
                        *name,
                        "status" | "watch_workers" | "watch_plan_count" | "jobs_success_by_url" | "ops_by_job"
                    ),
                "{name} sorts:\n{plan}"
            );
        }
        for (name, sql) in [
            ("job_step", JOB_STEP),
            ("job_update", JOB_UPDATE),
            ("grant", GRANT),
            ("runnable", RUNNABLE),
            ("op_insert", OP_INSERT),
            ("op_finish", OP_FINISH),
            ("renew", RENEW),
        ] {
            let program = explain(&conn, sql, false);
            assert!(
                !program.iter().any(|op| op == "OpenEphemeral"),
                "{name} builds a temporary table at every execution"
            );
        }
    }
}
