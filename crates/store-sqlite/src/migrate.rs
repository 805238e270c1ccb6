//! Forward-only schema migrations, applied when a handle opens.
//!
//! `sql/migrations/NNNN_name.sql` files run in order inside one `BEGIN
//! IMMEDIATE` transaction; `schema_version` records each one applied. A
//! database newer than this build is refused rather than misread.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Invalid, TxError};

/// Every migration, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../sql/migrations/0001_init.sql")),
    (2, include_str!("../sql/migrations/0002_ops_by_job.sql")),
    (3, include_str!("../sql/migrations/0003_canonical_url_if_other.sql")),
    (4, include_str!("../sql/migrations/0004_reconcile_mark.sql")),
    (5, include_str!("../sql/migrations/0005_expected_content_type.sql")),
    (6, include_str!("../sql/migrations/0006_host_budget.sql")),
    (7, include_str!("../sql/migrations/0007_watch.sql")),
    (8, include_str!("../sql/migrations/0008_ops_by_job_seq.sql")),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the schema up to [`LATEST`]; returns the version found before.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, TxError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );",
    )?;
    let found: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    if found > LATEST {
        return Err(TxError::Store(oncefetch_core::StoreError::backend(
            crate::error::STORE,
            Invalid(format!(
                "database schema version {found} is newer than this build supports ({LATEST}); upgrade oncefetch"
            )),
        )));
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, CAST(round(unixepoch('subsec') * 1000) AS INTEGER))",
            [version],
        )?;
        tracing::debug!(version, "applied sqlite migration");
    }
    tx.commit()?;
    Ok(found)
}

/// Checks, without writing, that the schema is [`LATEST`]: for a handle
/// opened read-only, which cannot migrate. `path` names the ledger in the
/// message.
pub(crate) fn check(conn: &Connection, path: &std::path::Path) -> Result<(), TxError> {
    let has_versions: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )?;
    let found: i64 = if has_versions {
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?
    } else {
        0
    };
    let message = match found {
        LATEST => return Ok(()),
        newer if newer > LATEST => {
            format!("database schema version {newer} is newer than this build supports ({LATEST}); upgrade oncefetch")
        }
        older => format!(
            "the ledger {} has schema version {older} and needs migrating to version {LATEST}, which a \
             read-only command cannot do; run a command that writes (e.g. `oncefetch recover`) with write access first",
            path.display()
        ),
    };
    Err(TxError::Store(oncefetch_core::StoreError::backend(
        crate::error::STORE,
        Invalid(message),
    )))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{migrate, LATEST, MIGRATIONS};

    /// A ledger written at schema version 1, with ops rows in several states.
    fn version_1_ledger() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(MIGRATIONS[0].1).expect("version 1");
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1, 0);
             INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url, state, epoch)
                 VALUES ('j1', 'w', 'a', 'http://h/a', 'http://h/a', 'LEASED', 2);
             INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
                 VALUES ('o1', 'j1', 'HEAD', 1, 10, 11, 'ABANDONED', NULL),
                        ('o1', 'j1', 'HEAD', 2, 12, 13, 'OK', '{}'),
                        ('o2', 'j1', 'STREAM', 2, 14, NULL, NULL, NULL);",
        )
        .expect("version 1 rows");
        conn
    }

    #[test]
    fn a_read_only_handle_checks_the_schema_without_migrating() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0].1).expect("version 1");
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1, 0);",
        )
        .expect("version 1 recorded");
        drop(conn);
        let options = crate::SqliteOptions::new(&path).read_only(true);
        let message = match crate::conn::set_up(&options) {
            Err(err) => format!("{err:?}"),
            Ok(_) => panic!("an old schema opens read-only"),
        };
        assert!(message.contains("needs migrating to version"), "{message}");
        let conn = rusqlite::Connection::open(&path).expect("open");
        let version: i64 = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, 1, "nothing migrated");
    }

    #[test]
    fn version_8_indexes_every_ops_row_by_its_jobs_planned_seq() {
        let mut conn = version_1_ledger();
        conn.execute_batch(
            "INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url, state, epoch)
                 VALUES ('j2', 'w', 'b', 'http://h/b', 'http://h/b', 'LEASED', 1);
             INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
                 VALUES ('o3', 'j2', 'HEAD', 1, 15, NULL, NULL, NULL);",
        )
        .expect("a second job");
        migrate(&mut conn).expect("migrate");
        let rows: Vec<(i64, String, i64)> = conn
            .prepare("SELECT seq, op_key, job_seq FROM ops ORDER BY seq")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let row = |seq, op: &str, job_seq| (seq, op.to_owned(), job_seq);
        assert_eq!(
            rows,
            [row(1, "o1", 1), row(2, "o1", 1), row(3, "o2", 1), row(4, "o3", 2)]
        );
        let attempt: i64 = conn
            .query_row(
                crate::queries::OP_FACTS,
                rusqlite::named_params! {":job_seq": 2, ":op_key": "o3"},
                |r| r.get(0),
            )
            .expect("found by the job's planned_seq");
        assert_eq!(attempt, 4);
    }

    #[test]
    fn version_7_counts_the_jobs_already_planned() {
        let mut conn = version_1_ledger();
        conn.execute_batch(
            "INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url, state, size)
                 VALUES ('j2', 'w', 'b', 'http://u@h:81/b', 'http://u@h:81/b', 'SUCCESS', 7),
                        ('j3', 'w', 'c', 'http://h/c', 'http://h/c', 'PLANNED', NULL);",
        )
        .expect("more jobs");
        migrate(&mut conn).expect("migrate");
        let counts: Vec<(String, String, i64, i64)> = conn
            .prepare("SELECT host, grp, jobs, bytes FROM watch_hosts ORDER BY host, grp")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let row = |h: &str, g: &str, n, b| (h.to_owned(), g.to_owned(), n, b);
        assert_eq!(
            counts,
            [
                row("h", "IN_FLIGHT", 1, 0),
                row("h", "PLANNED", 1, 0),
                row("h:81", "SUCCESS", 1, 7)
            ]
        );
    }

    #[test]
    fn version_5_adds_no_expected_content_type_to_earlier_jobs() {
        let mut conn = version_1_ledger();
        migrate(&mut conn).expect("migrate");
        let expected: Option<String> = conn
            .query_row("SELECT expected_content_type FROM jobs WHERE job_key = 'j1'", [], |r| {
                r.get(0)
            })
            .expect("the new column");
        assert_eq!(expected, None, "a job planned before expects no type");
        let job = conn
            .query_row(
                crate::queries::JOB_GET,
                rusqlite::named_params! {":job_key": "j1"},
                crate::rows::seq_and_job,
            )
            .expect("job");
        assert_eq!((job.1.work_id.as_str(), job.1.expected_content_type), ("w", None));
    }

    #[test]
    fn version_2_keeps_every_ops_row_and_the_ledger_order() {
        let mut conn = version_1_ledger();
        assert_eq!(migrate(&mut conn).expect("migrate"), 1);
        let rows: Vec<(i64, String, i64, Option<String>)> = conn
            .prepare("SELECT seq, op_key, epoch, result_code FROM ops ORDER BY seq")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let ok = Some("OK".to_owned());
        let expected = [
            (1, "o1".to_owned(), 1, Some("ABANDONED".to_owned())),
            (2, "o1".to_owned(), 2, ok),
            (3, "o2".to_owned(), 2, None),
        ];
        assert_eq!(rows, expected);
        let version: i64 = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, LATEST);
    }

    #[test]
    fn version_2_appends_after_the_last_seq_and_keeps_one_attempt_per_epoch() {
        let mut conn = version_1_ledger();
        migrate(&mut conn).expect("migrate");
        let insert = "INSERT INTO ops (op_key, job_key, kind, epoch, started_at, result_code, job_seq)
                      VALUES (?1, 'j1', 'HEAD', ?2, 20, ?3, 1)";
        conn.execute(insert, rusqlite::params!["o3", 2, None::<String>])
            .expect("a new op");
        assert_eq!(conn.last_insert_rowid(), 4);
        assert!(
            conn.execute(insert, rusqlite::params!["o3", 2, None::<String>])
                .is_err(),
            "a second attempt under one epoch"
        );
        assert_eq!(migrate(&mut conn).expect("again"), LATEST, "migrating twice is a no-op");
    }

    #[test]
    fn version_4_leaves_an_expired_lease_for_the_next_reconcile_to_count() {
        let mut conn = version_1_ledger();
        conn.execute("UPDATE jobs SET lease_owner = 'w', lease_expires_at = 5", [])
            .expect("an expired lease");
        migrate(&mut conn).expect("migrate");
        let lease: (Option<String>, Option<i64>) = conn
            .query_row("SELECT lease_owner, lease_expires_at FROM jobs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("lease");
        assert_eq!(lease, (Some("w".to_owned()), Some(5)), "the row is kept as it was");
        let report = crate::lease::reconcile(&conn, std::time::Duration::ZERO).expect("reconcile");
        assert_eq!((report.expired_leases, report.abandoned_ops), (1, 1));
        let again = crate::lease::reconcile(&conn, std::time::Duration::ZERO).expect("reconcile");
        assert_eq!((again.expired_leases, again.abandoned_ops), (0, 0), "counted once");
    }
}
