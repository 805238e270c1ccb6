//! Each op rule the kernel refuses, with its own [`StoreError`] variant and
//! message.

use oncefetch_core::kernel::{finish_op, may_start_ops, start_op, OpFacts};
use oncefetch_core::{JobState, ResultCode, StoreError};
use serde_json::json;

/// The facts of a key with an OK row (under some epoch) and, under the
/// fence's epoch, the attempt given.
fn facts(ok: bool, attempt: Option<Option<ResultCode>>) -> OpFacts {
    OpFacts {
        ok: ok.then(|| json!({"status": 200})),
        attempt,
    }
}

#[test]
fn a_second_attempt_under_one_epoch_is_op_already_attempted() {
    for attempt in [None, Some(ResultCode::Error), Some(ResultCode::Abandoned)] {
        let err = start_op("k", 4, JobState::Leased, &facts(false, Some(attempt))).unwrap_err();
        assert!(
            matches!(&err, StoreError::OpAlreadyAttempted { op_key, epoch: 4 } if op_key == "k"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "conflict: op k already attempted under epoch 4");
    }
    // An OK row is replayed instead, whatever the epoch has.
    assert_eq!(
        start_op("k", 4, JobState::Leased, &facts(true, Some(None))).expect("replay"),
        Some(json!({"status": 200}))
    );
}

#[test]
fn an_op_outside_flight_is_op_outside_flight() {
    for state in [
        JobState::Planned,
        JobState::Failed,
        JobState::Success,
        JobState::SkippedDuplicate,
    ] {
        let err = start_op("k", 1, state, &OpFacts::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::OpOutsideFlight { state: s } if s == state),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("conflict: cannot start an op on a {state} job")
        );
    }
    for state in JobState::ALL {
        assert_eq!(may_start_ops(state).is_ok(), state.is_in_flight(), "{state}");
    }
}

#[test]
fn finishing_what_does_not_run_is_op_not_running() {
    for attempt in [None, Some(Some(ResultCode::Ok)), Some(Some(ResultCode::Error))] {
        let err = finish_op("k", 2, ResultCode::Error, &facts(false, attempt)).unwrap_err();
        assert!(
            matches!(&err, StoreError::OpNotRunning { op_key, epoch: 2 } if op_key == "k"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "conflict: no running attempt of op k under epoch 2");
    }
}

#[test]
fn a_second_ok_row_is_op_already_ok() {
    let running = facts(true, Some(None));
    let err = finish_op("k", 2, ResultCode::Ok, &running).unwrap_err();
    assert!(
        matches!(&err, StoreError::OpAlreadyOk { op_key } if op_key == "k"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "conflict: op k already has an OK row");
    // An ERROR may still end the attempt.
    finish_op("k", 2, ResultCode::Error, &running).expect("an ERROR row is no second OK row");
}
