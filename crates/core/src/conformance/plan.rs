//! The planning clauses of [`LedgerStore`](crate::LedgerStore): idempotent
//! and streamed plans, conflicting expectations, content types.

use super::*;
use crate::error::StoreError;
use crate::job::{ExpectationConflict, Expectations, ExpectedUpdate, Job, JobPatch, JobQuery, NewJob};
use crate::ledger::LedgerExt;
use crate::state::JobState;

/// Planning a job twice changes nothing; counts say new vs existing.
pub async fn plan_is_idempotent(setup: Setup) {
    let store = setup.store;
    let jobs = sample_jobs("plan", 10);
    let first = store.plan(&jobs).await.expect("plan");
    assert_eq!((first.new, first.existing), (10, 0), "idempotent plan: first planning");
    let again = store.plan(&jobs).await.expect("plan again");
    assert_eq!((again.new, again.existing), (0, 10), "idempotent plan: replanning");
    let mut mixed = jobs[5..].to_vec();
    mixed.extend(sample_jobs("plan-more", 5));
    let third = store.plan(&mixed).await.expect("plan mixed");
    assert_eq!((third.new, third.existing), (5, 5), "idempotent plan: overlap");
    let status = store.status().await.expect("status");
    assert_eq!(status.total(), 15);
    assert_eq!(status.get(JobState::Planned), 15);
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(job.state, JobState::Planned);
    assert_eq!(job.url, jobs[0].url);
    assert_eq!(job.canonical_url, jobs[0].canonical_url);
    assert_eq!(job.expected_size, Some(42));
    assert_eq!(job.epoch, 0);
    assert!(matches!(store.job("no-such-job").await, Err(StoreError::NotFound(_))));
}

/// A streamed plan plans like batches of `plan`: keys met again, in the
/// ledger or earlier in the stream (even in the same batch), count as
/// existing.
pub async fn streamed_plan(setup: Setup) {
    let store = setup.store;
    let before = sample_jobs("stream", 3);
    store.plan(&before).await.expect("plan");
    let more = sample_jobs("stream-more", 700);
    let (batches, received) = tokio::sync::mpsc::channel(2);
    let sender = tokio::spawn(async move {
        // The planned jobs again, then new ones over several batches, a key
        // repeated inside one batch and across two.
        let mut first = before.clone();
        first.extend(more[..300].iter().cloned());
        first.push(more[0].clone());
        batches.send(first).await.expect("send");
        batches.send(more[299..600].to_vec()).await.expect("send");
        batches.send(Vec::new()).await.expect("send");
        batches.send(more[600..].to_vec()).await.expect("send");
    });
    let counts = store.plan_stream(received).await.expect("plan_stream");
    sender.await.expect("sender");
    assert_eq!((counts.new, counts.existing), (700, 5), "streamed plan: counts");
    let status = store.status().await.expect("status");
    assert_eq!(
        status.get(JobState::Planned),
        703,
        "streamed plan: every job planned once"
    );
    let (again, received) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move { again.send(sample_jobs("stream-more", 700)).await.expect("send") });
    let counts = store.plan_stream(received).await.expect("plan_stream again");
    assert_eq!(
        (counts.new, counts.existing),
        (0, 700),
        "streamed plan: replanning adds nothing"
    );
    let job = store
        .job(&sample_jobs("stream-more", 700)[650].job_key)
        .await
        .expect("job");
    assert_eq!(job.state, JobState::Planned);
    assert_eq!(job.work_id, "stream-more-w650");
}

/// `job` declaring `sha256` (and `size`, `None` for none).
fn declaring(job: &NewJob, sha256: Option<&str>, size: Option<u64>) -> NewJob {
    NewJob {
        expected_sha256: sha256.map(str::to_owned),
        expected_size: size,
        ..job.clone()
    }
}

/// Replanning a job with a line that declares another sha256 or size leaves
/// the job as it is and reports it, with its position in the input; a line
/// declaring nothing, or what the job records, is no conflict.
pub async fn plan_reports_other_expectations(setup: Setup) {
    let store = setup.store;
    let (h1, h2) = ("a1".repeat(32), "b2".repeat(32));
    let jobs = sample_jobs("expect-plan", 3);
    // jobs[0]: size 42 and no hash; jobs[1]: hash h1 and size 42.
    let hashed = declaring(&jobs[1], Some(&h1), Some(42));
    let first = store.plan(&[jobs[0].clone(), hashed.clone()]).await.expect("plan");
    assert!(
        first.conflicts.is_empty(),
        "plan reports other expectations: new jobs are no conflict"
    );
    let input = vec![
        declaring(&jobs[0], Some(&h1), None),     // 0: a hash the job lacks
        jobs[0].clone(),                          // 1: what the job records
        declaring(&jobs[0], None, None),          // 2: nothing declared
        declaring(&jobs[1], Some(&h1), None),     // 3: part of what it records
        declaring(&jobs[1], Some(&h1), Some(43)), // 4: another size
        declaring(&jobs[2], Some(&h1), None),     // 5: new
        declaring(&jobs[2], Some(&h2), None),     // 6: another hash than line 5 planned
        declaring(&jobs[2], Some(&h1), None),     // 7: what line 5 planned
    ];
    let counts = store.plan(&input).await.expect("plan again");
    assert_eq!(
        (counts.new, counts.existing),
        (1, 7),
        "plan reports other expectations: counts"
    );
    let conflict = |position, job: &NewJob, declared, recorded| ExpectationConflict {
        position,
        job_key: job.job_key.clone(),
        declared,
        recorded,
    };
    assert_eq!(
        counts.conflicts,
        vec![
            conflict(0, &jobs[0], expectations(Some(&h1), None), expectations(None, Some(42))),
            conflict(
                4,
                &jobs[1],
                expectations(Some(&h1), Some(43)),
                expectations(Some(&h1), Some(42))
            ),
            conflict(
                6,
                &jobs[2],
                expectations(Some(&h2), None),
                expectations(Some(&h1), None)
            ),
        ],
        "plan reports other expectations: the conflicting lines, in input order"
    );
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(
        job.expectations(),
        expectations(None, Some(42)),
        "plan reports other expectations: the job is left as it is"
    );
    // Streamed: positions count every job of the stream.
    let (batches, received) = tokio::sync::mpsc::channel(2);
    let more = sample_jobs("expect-plan-more", 2);
    let sender = tokio::spawn(async move {
        batches
            .send(vec![more[0].clone(), declaring(&more[1], Some(&h2), None)])
            .await
            .expect("send");
        // more[0] as planned; more[1] now declaring size 42, which it lacks.
        batches.send(more.clone()).await.expect("send");
        batches.send(input).await.expect("send");
    });
    let streamed = store.plan_stream(received).await.expect("plan_stream");
    sender.await.expect("sender");
    let positions: Vec<u64> = streamed.conflicts.iter().map(|c| c.position).collect();
    assert_eq!(
        (streamed.new, streamed.existing, positions),
        (2, 10, vec![3, 4, 8, 10]),
        "plan reports other expectations: streamed positions"
    );
}

/// `job` expecting `content_type`.
fn typed(job: &NewJob, content_type: &str) -> NewJob {
    NewJob {
        expected_content_type: Some(content_type.to_owned()),
        ..job.clone()
    }
}

/// Plan records a line's expected content type; `job`, `jobs` and a grant
/// return it. Replanning with another type is a conflict as another sha256
/// is; `update_expected` records a type, and requeues a finished job whose
/// expected type changes ([`Expectations::admit_finished`]).
pub async fn plan_records_the_content_type(setup: Setup) {
    let store = setup.store;
    let jobs = sample_jobs("content-type", 3);
    let pdf = "application/pdf";
    let input = vec![typed(&jobs[0], pdf), jobs[1].clone(), typed(&jobs[2], "image/*")];
    store.plan(&input).await.expect("plan");
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(
        job.expected_content_type.as_deref(),
        Some(pdf),
        "plan records the content type: job returns it"
    );
    assert_eq!(
        job,
        Job::planned(&input[0]),
        "plan records the content type: as planned"
    );
    let listed = store.jobs(&JobQuery::default()).await.expect("jobs");
    let types: std::collections::BTreeMap<_, _> = listed
        .iter()
        .map(|j| (j.job_key.clone(), j.expected_content_type.clone()))
        .collect();
    assert_eq!(
        types[&jobs[0].job_key].as_deref(),
        Some(pdf),
        "plan records the content type: jobs lists it"
    );
    assert_eq!(
        types[&jobs[1].job_key], None,
        "plan records the content type: none declared"
    );
    assert_eq!(types[&jobs[2].job_key].as_deref(), Some("image/*"));
    // Another type is a conflict; the same one, or none, is not.
    let again = vec![
        typed(&jobs[0], "text/html"),
        typed(&jobs[0], pdf),
        jobs[0].clone(),
        typed(&jobs[1], pdf),
    ];
    let counts = store.plan(&again).await.expect("plan again");
    let conflict = |position, job: &NewJob, declared: Option<&str>, recorded: Option<&str>| ExpectationConflict {
        position,
        job_key: job.job_key.clone(),
        declared: Expectations {
            size: Some(42),
            content_type: declared.map(str::to_owned),
            ..Expectations::default()
        },
        recorded: Expectations {
            size: Some(42),
            content_type: recorded.map(str::to_owned),
            ..Expectations::default()
        },
    };
    assert_eq!(
        counts.conflicts,
        vec![
            conflict(0, &jobs[0], Some("text/html"), Some(pdf)),
            conflict(3, &jobs[1], Some(pdf), None)
        ],
        "plan records the content type: another type is a conflict"
    );
    let declare = |content_type: &str| Expectations {
        content_type: Some(content_type.to_owned()),
        ..Expectations::default()
    };
    let updated = store
        .update_expected(&jobs[1].job_key, &declare(pdf), "test")
        .await
        .expect("update");
    assert_eq!(
        updated,
        ExpectedUpdate::Recorded,
        "plan records the content type: update_expected"
    );
    let job = store.job(&jobs[1].job_key).await.expect("job");
    assert_eq!(job.expected_content_type.as_deref(), Some(pdf));
    assert_eq!(
        job.expected_size,
        Some(42),
        "plan records the content type: other fields kept"
    );
    // A grant carries it to the worker.
    let leases = store.acquire(&request(OWNER, LONG, 3)).await.expect("acquire");
    let granted: std::collections::BTreeMap<_, _> = leases
        .iter()
        .map(|l| (l.job.job_key.clone(), l.job.expected_content_type.clone()))
        .collect();
    assert_eq!(granted.len(), 3);
    assert_eq!(
        granted[&jobs[0].job_key].as_deref(),
        Some(pdf),
        "plan records the content type: grants carry it"
    );
    // A finished job whose expected type changes goes back to PLANNED.
    let lease = leases
        .iter()
        .find(|l| l.job.job_key == jobs[0].job_key)
        .expect("leased");
    let content = JobPatch {
        sha256: Some("e5".repeat(32)),
        size: Some(42),
        path: Some("/out/w/a".into()),
        ..JobPatch::default()
    };
    store
        .advance(&lease.fence, &JobState::PIPELINE[2..], content)
        .await
        .expect("success");
    let same = store
        .update_expected(&jobs[0].job_key, &declare(pdf), "test")
        .await
        .expect("update");
    assert_eq!(
        same,
        ExpectedUpdate::Unchanged,
        "plan records the content type: same type"
    );
    let other = store
        .update_expected(&jobs[0].job_key, &declare("text/html"), "test")
        .await
        .expect("update");
    assert_eq!(
        other,
        ExpectedUpdate::Requeued,
        "plan records the content type: another type requeues"
    );
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(
        (job.state, job.expected_content_type.as_deref()),
        (JobState::Planned, Some("text/html"))
    );
}
