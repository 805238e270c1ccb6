//! What the ledger records of a job's multipart uploads, through its
//! [`PartLog`](oncefetch_core::destination::PartLog), and what it says
//! back: each upload still open, with its parts as a chain from part 1 (each
//! ending where the next starts) and the hash state at the chain's end.
//!
//! Records (the `state` of a STREAM row):
//! `{"upload": ID, "staging": KEY}` when an upload starts;
//! `{"upload": ID, "part": N, "etag": E, "size": S, "end": OFFSET, "hash": STATE}`
//! for each finished part; `{"upload": ID, "completing": true}` just before
//! it is completed (the fenced write a stale epoch cannot make);
//! `{"upload": ID, "closed": true}` once completed or aborted;
//! `{"placed": LOCATION, "etag": E, "size": S}` once a large body's object
//! is placed (the ETag of the final object, for `verify --quick`).

use std::collections::BTreeMap;

use oncefetch_core::destination::Prior;
use oncefetch_core::pipeline::files::PartialName;
use serde_json::{json, Value};

use crate::sha::Resumable;

/// The handle prefix of a staging object (a completed upload not placed).
pub(crate) const OBJECT: &str = "object:";

/// A multipart upload at its staging key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub(crate) id: String,
    pub(crate) staging: String,
}

impl Upload {
    pub(crate) fn state(&self) -> Value {
        json!({ "upload": self.id, "staging": self.staging })
    }
}

/// A finished part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// 1-based.
    pub(crate) number: usize,
    pub(crate) etag: String,
    pub(crate) size: u64,
    /// Offset after its last byte.
    pub(crate) end: u64,
    /// The body's hash state after it ([`Resumable::saved`]).
    pub(crate) hash: Option<String>,
}

impl Part {
    pub(crate) fn state(&self, upload: &str) -> Value {
        json!({
            "upload": upload,
            "part": self.number,
            "etag": self.etag,
            "size": self.size,
            "end": self.end,
            "hash": self.hash,
        })
    }

    fn parse(state: &Value) -> Option<Self> {
        Some(Self {
            number: usize::try_from(state.get("part")?.as_u64()?).ok()?,
            etag: state.get("etag")?.as_str()?.to_owned(),
            size: state.get("size")?.as_u64()?,
            end: state.get("end")?.as_u64()?,
            hash: state.get("hash").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

pub(crate) fn upload_key(id: &str) -> String {
    format!("upload {id}")
}

pub(crate) fn part_key(id: &str, number: usize) -> String {
    format!("part {number} of {id}")
}

pub(crate) fn complete_key(id: &str) -> String {
    format!("complete {id}")
}

pub(crate) fn closed_key(id: &str) -> String {
    format!("closed {id}")
}

pub(crate) fn closed(id: &str) -> Value {
    json!({ "upload": id, "closed": true })
}

pub(crate) fn placed_key(location: &str) -> String {
    format!("placed {location}")
}

pub(crate) fn placed(location: &str, etag: &str, size: u64) -> Value {
    json!({ "placed": location, "etag": etag, "size": size })
}

/// The ETag `records` last recorded for the object placed at `location`.
pub(crate) fn placed_etag(records: &[(i64, Value)], location: &str) -> Option<String> {
    records
        .iter()
        .rev()
        .filter(|(_, state)| state.get("superseded").is_none())
        .find(|(_, state)| state.get("placed").and_then(Value::as_str) == Some(location))
        .and_then(|(_, state)| Some(state.get("etag")?.as_str()?.to_owned()))
}

/// An upload the ledger knows open.
#[derive(Debug, Clone)]
pub(crate) struct OpenUpload {
    pub(crate) upload: Upload,
    /// The latest epoch that recorded for it.
    pub(crate) epoch: i64,
    /// Its parts, a chain from part 1.
    pub(crate) parts: Vec<Part>,
    /// A requeue superseded it: it is only aborted, never resumed.
    pub(crate) superseded: bool,
}

impl OpenUpload {
    /// Bytes the chain holds.
    pub(crate) fn len(&self) -> u64 {
        self.parts.last().map_or(0, |p| p.end)
    }

    /// The hash state at the chain's end.
    pub(crate) fn hash(&self) -> Option<Resumable> {
        match self.parts.last() {
            None => Some(Resumable::default()),
            Some(last) => Resumable::restore(last.hash.as_deref()?),
        }
    }

    pub(crate) fn prior(&self, job_key: &str) -> Prior {
        let file = self.upload.staging.rsplit('/').next().unwrap_or_default();
        let tag = PartialName::parse(file).and_then(|name| name.validator_tag);
        Prior {
            job_key: job_key.to_owned(),
            epoch: self.epoch,
            validator_tag: tag,
            len: self.len(),
            handle: self.upload.id.clone(),
            name: self.upload.staging.clone(),
        }
    }
}

/// The open uploads `records` (`(epoch, state)`, oldest first) describe.
pub(crate) fn open_uploads(records: &[(i64, Value)]) -> Vec<OpenUpload> {
    struct Seen {
        upload: Upload,
        epoch: i64,
        parts: BTreeMap<usize, Part>,
        closed: bool,
        superseded: bool,
    }
    let mut seen: Vec<Seen> = Vec::new();
    for (epoch, state) in records {
        let Some(id) = state.get("upload").and_then(Value::as_str) else {
            continue;
        };
        let index = match seen.iter().position(|s| s.upload.id == id) {
            Some(index) => index,
            None => {
                let Some(staging) = state.get("staging").and_then(Value::as_str) else {
                    continue;
                };
                seen.push(Seen {
                    upload: Upload {
                        id: id.to_owned(),
                        staging: staging.to_owned(),
                    },
                    epoch: *epoch,
                    parts: BTreeMap::new(),
                    closed: false,
                    superseded: false,
                });
                seen.len() - 1
            }
        };
        let entry = &mut seen[index];
        entry.epoch = entry.epoch.max(*epoch);
        entry.superseded |= state.get("superseded").is_some();
        if state.get("closed").is_some() {
            entry.closed = true;
        } else if let Some(part) = Part::parse(state) {
            entry.parts.insert(part.number, part);
        }
    }
    seen.into_iter()
        .filter(|s| !s.closed)
        .map(|s| {
            let mut chain: Vec<Part> = Vec::new();
            // A superseded upload (the job was requeued) is only aborted.
            let parts = if s.superseded { BTreeMap::new() } else { s.parts };
            for (number, part) in parts {
                let start = chain.last().map_or(0, |p| p.end);
                if number != chain.len() + 1 || part.end != start + part.size {
                    break;
                }
                chain.push(part);
            }
            OpenUpload {
                upload: s.upload,
                epoch: s.epoch,
                parts: chain,
                superseded: s.superseded,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: usize, size: u64, end: u64) -> Part {
        Part {
            number,
            etag: format!("e{number}"),
            size,
            end,
            hash: None,
        }
    }

    #[test]
    fn uploads_are_chains_from_part_one_and_closed_ones_go() {
        let a = Upload {
            id: "A".into(),
            staging: "p/.oncefetch/partial/k.1.0123456789abcdef.part".into(),
        };
        let b = Upload {
            id: "B".into(),
            staging: "p/.oncefetch/partial/k.2.part".into(),
        };
        let records = vec![
            (1, a.state()),
            (1, part(1, 5, 5).state("A")),
            (1, part(2, 5, 10).state("A")),
            // Part 4 without part 3: the chain stops at part 2.
            (2, part(4, 5, 20).state("A")),
            (2, b.state()),
            (2, closed("B")),
        ];
        let open = open_uploads(&records);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].upload, a);
        assert_eq!(open[0].epoch, 2, "the latest epoch that recorded");
        assert_eq!(open[0].len(), 10);
        let prior = open[0].prior("k");
        assert_eq!(prior.validator_tag.as_deref(), Some("0123456789abcdef"));
        assert_eq!((prior.handle.as_str(), prior.len), ("A", 10));
        // A superseded upload is open, with nothing to resume.
        let mut requeued = records.clone();
        requeued.push((3, json!({ "upload": "A", "superseded": true })));
        let open = open_uploads(&requeued);
        assert_eq!((open.len(), open[0].len()), (1, 0));
        // A part whose offsets do not follow is not part of the chain.
        let broken = vec![
            (1, a.state()),
            (1, part(1, 5, 5).state("A")),
            (1, part(2, 5, 11).state("A")),
        ];
        assert_eq!(open_uploads(&broken)[0].len(), 5);
    }
}
