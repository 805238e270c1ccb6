//! Split downloads (SPEC §6.2): one large file over several connections,
//! as ranged GETs of pieces written at their offsets into one partial.
//!
//! What is written is recorded in the ledger — a [`PartLog`] record of the
//! written ranges every [`Layout::record_every`] bytes (a 64th of the
//! file, 1–16 MiB), after those bytes are made durable when fsync is on —
//! so that a later epoch resumes every piece
//! where the last record left it. The SHA-256 is taken in byte order by
//! [`follow_hash`], which reads back the written prefix as it grows: the
//! pieces are handed out in order, so the prefix grows close behind the
//! connections and little is left to hash when the last piece lands.

pub(crate) mod ranges;

use std::io;
use std::ops::Range;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use self::ranges::Ranges;
use crate::destination::{PartLog, Prior, SplitWrite};

/// Bytes written between two records of the written ranges, at least and
/// at most.
const RECORD_MIN: u64 = 1 << 20;
const RECORD_MAX: u64 = 16 << 20;
/// Bytes a connection gathers before one write (what a crash loses of
/// each connection's piece, beside what went unrecorded).
pub(crate) const WRITE_BLOCK: usize = 256 << 10;
/// Bytes read back and hashed at a time.
const HASH_BLOCK: usize = 1 << 20;
/// The smallest and largest piece asked for in one GET.
const PIECE_MIN: u64 = 1 << 20;
const PIECE_MAX: u64 = 8 << 20;

/// How a run splits large downloads (`--split N`, `--split-min SIZE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConfig {
    /// Connections per file at most; 1 never splits.
    pub connections: usize,
    /// Bytes per connection at least: a file is split over
    /// `min(connections, size / min_size)` connections, and not at all
    /// when that is below 2.
    pub min_size: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            connections: 1,
            min_size: 20 << 20,
        }
    }
}

/// How one file of `len` bytes is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Connections at once.
    pub(crate) connections: usize,
    /// Bytes per piece (the last of a gap may be shorter).
    pub(crate) piece: u64,
    /// Bytes written between two records: what a crash may cost again.
    pub(crate) record_every: u64,
}

impl SplitConfig {
    /// The layout of a file of `len` bytes, or `None` when it is not split.
    pub(crate) fn layout(&self, len: u64) -> Option<Layout> {
        let by_size = usize::try_from(len / self.min_size.max(1)).unwrap_or(usize::MAX);
        let connections = self.connections.min(by_size);
        if connections < 2 {
            return None;
        }
        // Several pieces per connection, so the written prefix (what can be
        // hashed) grows steadily instead of when the first connection ends.
        let piece = (len / (connections as u64 * 8)).clamp(PIECE_MIN, PIECE_MAX);
        let record_every = (len / 64).clamp(RECORD_MIN, RECORD_MAX);
        Some(Layout {
            connections,
            piece,
            record_every,
        })
    }
}

/// A split partial an earlier epoch left, with what its records say is
/// written in it.
#[derive(Debug, Clone)]
pub(crate) struct SplitPrior {
    /// The partial.
    pub(crate) prior: Prior,
    /// Its length when whole.
    pub(crate) len: u64,
    /// The validator its bytes were downloaded under.
    pub(crate) validator: String,
    /// The ranges written and recorded.
    pub(crate) written: Ranges,
}

/// The [`PartLog`] key of the `n`th record of the split partial `handle`.
pub(crate) fn record_key(handle: &str, n: u64) -> String {
    format!("{handle}#split-{n}")
}

/// The state recorded for a split partial: its handle, length, validator
/// and written ranges.
pub(crate) fn record_state(handle: &str, len: u64, validator: &str, written: &Ranges) -> Value {
    let ranges: Vec<[u64; 2]> = written.iter().map(|r| [r.start, r.end]).collect();
    json!({ "split": handle, "length": len, "validator": validator, "written": ranges })
}

/// The split partial to resume among `priors` (those still there): the one
/// the latest record of an epoch before `epoch` names, when it was
/// downloaded under `validator` and its file is as long as its records say.
pub(crate) fn prior_of(records: &[(i64, Value)], priors: &[Prior], epoch: i64, validator: &str) -> Option<SplitPrior> {
    let (_, state) = records
        .iter()
        .rev()
        .find(|(at, state)| *at < epoch && state.get("split").is_some())?;
    if state.get("superseded").is_some() || state["validator"].as_str() != Some(validator) {
        return None;
    }
    let handle = state["split"].as_str()?;
    let len = state["length"].as_u64()?;
    let written = Ranges::of(state["written"].as_array()?.iter().filter_map(|pair| {
        let start = pair.get(0)?.as_u64()?;
        let end = pair.get(1)?.as_u64()?;
        (start <= end && end <= len).then_some(start..end)
    }));
    let prior = priors.iter().find(|p| p.handle == handle)?;
    let reaches = written.iter().last().map_or(0, |r| r.end);
    (prior.len >= reaches).then(|| SplitPrior {
        prior: prior.clone(),
        len,
        validator: validator.to_owned(),
        written,
    })
}

/// The SHA-256 (hex) of the `len` bytes of `write`, read back in order as
/// `prefix` (the end of the written prefix) grows. Fails when `prefix`'s
/// sender goes before the whole file is written.
pub(crate) async fn follow_hash(
    write: &dyn SplitWrite,
    mut prefix: watch::Receiver<u64>,
    len: u64,
) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(HASH_BLOCK);
    let mut at = 0;
    while at < len {
        let ready = *prefix.borrow_and_update();
        if at >= ready {
            prefix
                .changed()
                .await
                .map_err(|_| io::Error::other("the split download ended before its last byte"))?;
            continue;
        }
        let n = usize::try_from(ready - at).unwrap_or(HASH_BLOCK).min(HASH_BLOCK);
        buf.resize(n, 0);
        buf = write.read_at(at, buf).await?;
        (hasher, buf) = tokio::task::spawn_blocking(move || {
            hasher.update(&buf);
            (hasher, buf)
        })
        .await
        .map_err(|e| io::Error::other(format!("hash task failed: {e}")))?;
        at += n as u64;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Every record of a split partial's written ranges: the next record's
/// number, and the bytes written since the last.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Ranges written so far.
    pub(crate) written: Ranges,
    every: u64,
    next: u64,
    unrecorded: u64,
    /// A record is being made (one at a time).
    recording: bool,
}

/// A record to make: its number and the ranges it names.
#[derive(Debug)]
pub(crate) struct Due {
    pub(crate) n: u64,
    pub(crate) written: Ranges,
}

impl Records {
    /// Records every `every` bytes, from `written` (a resumed partial's).
    pub(crate) fn from(written: Ranges, every: u64) -> Self {
        Self {
            written,
            every,
            ..Self::default()
        }
    }

    /// `range` was written; a record is due when `every` bytes went
    /// unrecorded and none is being made.
    pub(crate) fn wrote(&mut self, range: Range<u64>) -> Option<Due> {
        self.unrecorded += range.end - range.start;
        self.written.insert(range);
        (self.unrecorded >= self.every && !self.recording).then(|| self.due())
    }

    /// A record of everything written so far, when some of it is not
    /// recorded: the last, once the connections have stopped (a record
    /// they were making counts for nothing).
    pub(crate) fn all(&mut self) -> Option<Due> {
        (self.unrecorded > 0 || self.recording).then(|| self.due())
    }

    fn due(&mut self) -> Due {
        self.recording = true;
        self.unrecorded = 0;
        self.next += 1;
        Due {
            n: self.next,
            written: self.written.clone(),
        }
    }

    /// The record being made is made (or failed: the next one repeats it).
    pub(crate) fn recorded(&mut self) {
        self.recording = false;
    }
}

/// Makes `due`'s bytes durable (with `durable`), then records them.
pub(crate) async fn record(
    write: &dyn SplitWrite,
    log: &dyn PartLog,
    due: Due,
    len: u64,
    validator: &str,
    durable: bool,
) -> io::Result<()> {
    if durable {
        write.sync().await?;
    }
    let handle = write.handle();
    log.record(
        &record_key(&handle, due.n),
        record_state(&handle, len, validator, &due.written),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // sets of one range
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn layouts_split_only_large_files_over_enough_connections() {
        let config = SplitConfig {
            connections: 16,
            min_size: 20 * MIB,
        };
        assert_eq!(config.layout(39 * MIB), None, "below two connections' worth");
        let two = config.layout(40 * MIB).unwrap();
        assert_eq!(
            (two.connections, two.piece, two.record_every),
            (2, 2 * MIB + MIB / 2, MIB)
        );
        let gib = config.layout(1024 * MIB).unwrap();
        assert_eq!((gib.connections, gib.piece, gib.record_every), (16, 8 * MIB, 16 * MIB));
        let huge = config.layout(64 * 1024 * MIB).unwrap();
        assert_eq!((huge.piece, huge.record_every), (8 * MIB, 16 * MIB));
        assert_eq!(
            SplitConfig::default().layout(1 << 40),
            None,
            "one connection never splits"
        );
    }

    fn prior(handle: &str, len: u64) -> Prior {
        Prior {
            job_key: "k".into(),
            epoch: 1,
            validator_tag: None,
            len,
            handle: handle.into(),
            name: handle.into(),
        }
    }

    #[test]
    fn the_latest_record_of_an_earlier_epoch_names_the_prior() {
        let state = |written: &[Range<u64>]| record_state("/p/a", 100, "\"v\"", &Ranges::of(written.iter().cloned()));
        let records = vec![
            (1, state(&[0..10])),
            (1, json!({"upload": "other destination"})),
            (2, state(&[0..10, 50..60])),
            (3, state(&[0..100])),
        ];
        let priors = [prior("/p/a", 100)];
        let found = prior_of(&records, &priors, 3, "\"v\"").unwrap();
        assert_eq!(
            found.written,
            Ranges::of([0..10, 50..60]),
            "epoch 3's own record is not a prior's"
        );
        assert_eq!(found.len, 100);
        assert!(prior_of(&records, &priors, 3, "\"w\"").is_none(), "another validator");
        assert!(
            prior_of(&records, &[prior("/p/b", 100)], 3, "\"v\"").is_none(),
            "the file is gone"
        );
        assert!(
            prior_of(&records, &[prior("/p/a", 55)], 3, "\"v\"").is_none(),
            "the file is shorter than its record"
        );
        let mut superseded = records.clone();
        superseded[2].1["superseded"] = Value::Bool(true);
        assert!(prior_of(&superseded, &priors, 3, "\"v\"").is_none());
    }

    #[test]
    fn records_fall_due_every_so_many_bytes_one_at_a_time() {
        const RECORD_EVERY: u64 = 16 * MIB;
        let mut records = Records::from(Ranges::of([0..MIB]), RECORD_EVERY);
        assert!(records.wrote(MIB..RECORD_EVERY).is_none());
        let due = records.wrote(RECORD_EVERY..RECORD_EVERY + MIB).unwrap();
        assert_eq!((due.n, due.written), (1, Ranges::of([0..RECORD_EVERY + MIB])));
        assert!(records.wrote(50 * MIB..80 * MIB).is_none(), "one record at a time");
        records.recorded();
        let due = records.all().unwrap();
        assert_eq!(due.n, 2);
        assert_eq!(due.written.len(), RECORD_EVERY + MIB + 30 * MIB);
        records.recorded();
        assert!(records.all().is_none(), "nothing new to record");
        records.wrote(90 * MIB..91 * MIB);
        let _interrupted = records.wrote(91 * MIB..91 * MIB + RECORD_EVERY).unwrap();
        assert_eq!(
            records.all().unwrap().n,
            4,
            "a record being made when the connections stopped is made again"
        );
    }
}
