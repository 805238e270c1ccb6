//! The destination conformance kit: every clause of the [`Destination`]
//! contract as an async check of the clause's name ([`CHECKS`]) that panics
//! naming the clause. A backend's tests call [`run_all`] on a fresh,
//! empty destination; the clauses use distinct job keys and ids, so they may
//! share one.
//!
//! [`KitLog`] stands in for the ledger: records by epoch, and a current
//! epoch that makes the earlier ones stale. [`IgnoresStaleness`] wraps a
//! destination so that its writers never learn they are stale: the kit's
//! negative tests show [`stale_epochs_never_place`] catches it; [`Overwrites`]
//! clears a location before placing, and [`placement_never_replaces`] catches it.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Destination, PartLog, PartialId, PartialWrite, Placement, Prior, ReadStream, Written};
use crate::pipeline::split::ranges::Ranges;

/// Body of the large artifacts: past an object store's 5 MiB minimum part,
/// so that a multipart upload is resumed and completed.
pub const LARGE: usize = 11 << 20;

/// The ledger of the kit: every epoch's records of one job, and the epoch
/// that is current (a later one's writers are stale).
#[derive(Debug, Default)]
pub struct KitLedger {
    records: Mutex<Vec<(i64, String, Value)>>,
    current: AtomicI64,
}

impl KitLedger {
    /// A ledger whose current epoch is 0 (nothing begun).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes `epoch` current and returns its log.
    pub fn epoch(self: &Arc<Self>, epoch: i64) -> Arc<KitLog> {
        self.current.fetch_max(epoch, Ordering::SeqCst);
        Arc::new(KitLog {
            ledger: Arc::clone(self),
            epoch,
        })
    }
}

/// One epoch's view of a [`KitLedger`].
#[derive(Debug)]
pub struct KitLog {
    ledger: Arc<KitLedger>,
    epoch: i64,
}

fn stale(epoch: i64, current: i64) -> io::Error {
    io::Error::other(format!("epoch {epoch} is stale: epoch {current} holds the lease"))
}

#[async_trait]
impl PartLog for KitLog {
    async fn record(&self, key: &str, state: Value) -> io::Result<()> {
        self.check()?;
        let mut records = self.ledger.records.lock().unwrap_or_else(|p| p.into_inner());
        if !records.iter().any(|(e, k, _)| *e == self.epoch && k == key) {
            records.push((self.epoch, key.to_owned(), state));
        }
        Ok(())
    }

    async fn records(&self) -> io::Result<Vec<(i64, Value)>> {
        let records = self.ledger.records.lock().unwrap_or_else(|p| p.into_inner());
        Ok(records.iter().map(|(e, _, v)| (*e, v.clone())).collect())
    }

    fn epoch(&self) -> i64 {
        self.epoch
    }

    fn check(&self) -> io::Result<()> {
        let current = self.ledger.current.load(Ordering::SeqCst);
        if current > self.epoch {
            return Err(stale(self.epoch, current));
        }
        Ok(())
    }
}

/// A log that never says its epoch is stale: what a destination that
/// completes a stale epoch's upload sees.
#[derive(Debug)]
struct Blind(Arc<dyn PartLog>);

#[async_trait]
impl PartLog for Blind {
    async fn record(&self, key: &str, state: Value) -> io::Result<()> {
        match self.0.record(key, state.clone()).await {
            Ok(()) => Ok(()),
            Err(_) => Ok(()),
        }
    }
    async fn records(&self) -> io::Result<Vec<(i64, Value)>> {
        self.0.records().await
    }
    fn epoch(&self) -> i64 {
        self.0.epoch()
    }
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A destination whose writers never learn that their epoch went stale
/// (for the kit's negative tests): it completes a stale epoch's upload.
#[derive(Debug)]
pub struct IgnoresStaleness(pub Arc<dyn Destination>);

#[async_trait]
impl Destination for IgnoresStaleness {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn location(&self, work_id: &str, artifact_id: &str) -> String {
        self.0.location(work_id, artifact_id)
    }
    fn holds(&self, location: &str) -> bool {
        self.0.holds(location)
    }
    async fn probe(&self) -> io::Result<()> {
        self.0.probe().await
    }
    async fn priors(&self, job_key: &str, epoch: i64, log: &dyn PartLog) -> io::Result<Vec<Prior>> {
        self.0.priors(job_key, epoch, log).await
    }
    async fn begin(
        &self,
        id: &PartialId,
        resume: Option<&Prior>,
        log: Arc<dyn PartLog>,
        durable: bool,
    ) -> io::Result<Box<dyn PartialWrite>> {
        self.0.begin(id, resume, Arc::new(Blind(log)), durable).await
    }
    async fn remove(&self, partials: Vec<Prior>, log: Option<&dyn PartLog>) -> io::Result<()> {
        self.0.remove(partials, log).await
    }
    async fn discard(&self, job_key: &str, epoch: i64, own: Option<String>, log: &dyn PartLog) -> io::Result<()> {
        self.0.discard(job_key, epoch, own, log).await
    }
    async fn place_copy(&self, source: &str, location: &str, sha256: &str, durable: bool) -> io::Result<Placement> {
        self.0.place_copy(source, location, sha256, durable).await
    }
    async fn exists(&self, location: &str) -> io::Result<bool> {
        self.0.exists(location).await
    }
    async fn read(&self, location: &str) -> io::Result<ReadStream> {
        self.0.read(location).await
    }
    async fn all_partials(&self) -> io::Result<Vec<Prior>> {
        self.0.all_partials().await
    }
}

/// How [`Overwrites`] clears a location before placing: removes whatever
/// stands there.
pub type Clear = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// A destination that overwrites (for the kit's negative tests): before
/// placing, `clear` removes whatever stands at the location.
#[derive(Debug)]
pub struct Overwrites {
    inner: Arc<dyn Destination>,
    clear: Clearing,
}

/// A [`Clear`], shown by name.
#[derive(Clone)]
struct Clearing(Clear);

impl std::fmt::Debug for Clearing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clearing")
    }
}

impl Overwrites {
    /// `inner`, with `clear` run before every placement.
    pub fn new(inner: Arc<dyn Destination>, clear: Clear) -> Self {
        Self {
            inner,
            clear: Clearing(clear),
        }
    }
}

#[derive(Debug)]
struct OverwritingPartial(Box<dyn PartialWrite>, Clearing);

#[derive(Debug)]
struct OverwritingWritten(Box<dyn Written>, Clearing);

#[async_trait]
impl PartialWrite for OverwritingPartial {
    async fn push(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.push(chunk).await
    }
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn handle(&self) -> String {
        self.0.handle()
    }
    async fn finish(self: Box<Self>) -> io::Result<Box<dyn Written>> {
        Ok(Box::new(OverwritingWritten(self.0.finish().await?, self.1)))
    }
}

#[async_trait]
impl Written for OverwritingWritten {
    fn sha256(&self) -> &str {
        self.0.sha256()
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn handle(&self) -> String {
        self.0.handle()
    }
    async fn place(self: Box<Self>, location: &str, durable: bool) -> io::Result<Placement> {
        (self.1 .0)(location.to_owned()).await;
        self.0.place(location, durable).await
    }
}

#[async_trait]
impl Destination for Overwrites {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn location(&self, work_id: &str, artifact_id: &str) -> String {
        self.inner.location(work_id, artifact_id)
    }
    fn holds(&self, location: &str) -> bool {
        self.inner.holds(location)
    }
    async fn probe(&self) -> io::Result<()> {
        self.inner.probe().await
    }
    async fn priors(&self, job_key: &str, epoch: i64, log: &dyn PartLog) -> io::Result<Vec<Prior>> {
        self.inner.priors(job_key, epoch, log).await
    }
    async fn begin(
        &self,
        id: &PartialId,
        resume: Option<&Prior>,
        log: Arc<dyn PartLog>,
        durable: bool,
    ) -> io::Result<Box<dyn PartialWrite>> {
        let inner = self.inner.begin(id, resume, log, durable).await?;
        Ok(Box::new(OverwritingPartial(inner, self.clear.clone())))
    }
    async fn remove(&self, partials: Vec<Prior>, log: Option<&dyn PartLog>) -> io::Result<()> {
        self.inner.remove(partials, log).await
    }
    async fn discard(&self, job_key: &str, epoch: i64, own: Option<String>, log: &dyn PartLog) -> io::Result<()> {
        self.inner.discard(job_key, epoch, own, log).await
    }
    async fn place_copy(&self, source: &str, location: &str, sha256: &str, durable: bool) -> io::Result<Placement> {
        self.inner.place_copy(source, location, sha256, durable).await
    }
    async fn exists(&self, location: &str) -> io::Result<bool> {
        self.inner.exists(location).await
    }
    async fn read(&self, location: &str) -> io::Result<ReadStream> {
        self.inner.read(location).await
    }
    async fn all_partials(&self) -> io::Result<Vec<Prior>> {
        self.inner.all_partials().await
    }
}

/// `len` bytes that differ with `seed` and do not repeat within a block.
pub fn body(seed: u8, len: usize) -> Vec<u8> {
    let mut state = (u64::from(seed) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn id(job_key: &str, epoch: i64) -> PartialId {
    PartialId {
        job_key: job_key.to_owned(),
        epoch,
        validator_tag: Some("00c0ffee00c0ffee".to_owned()),
    }
}

/// Everything at `location`.
pub async fn read_all(dest: &dyn Destination, location: &str) -> Vec<u8> {
    let stream = dest.read(location).await.expect("read back");
    let chunks: Vec<_> = stream.try_collect().await.expect("read to the end");
    chunks.concat()
}

async fn push_all(writer: &mut dyn PartialWrite, bytes: &[u8]) {
    // Odd chunk sizes, as a network hands them over.
    for chunk in bytes.chunks(64 * 1024 + 7) {
        writer.push(chunk).await.expect("push");
    }
}

/// Clause 6: discards epoch 2's partial `handle` of `job` twice (the second
/// time is no error); then nothing of the job is left.
async fn discard_twice(dest: &dyn Destination, ledger: &Arc<KitLedger>, job: &str, handle: String) {
    let log2 = ledger.epoch(2);
    dest.discard(job, 2, Some(handle.clone()), log2.as_ref())
        .await
        .expect("discard");
    dest.discard(job, 2, Some(handle), log2.as_ref())
        .await
        .expect("clause 6: discarding again is no error");
    let left = dest.priors(job, 3, ledger.epoch(3).as_ref()).await.expect("priors");
    assert!(left.is_empty(), "clause 6: nothing of the job is left: {left:?}");
    let all = dest.all_partials().await.expect("all partials");
    assert!(all.iter().all(|p| p.job_key != job), "clause 6: {all:?}");
}

/// Writes `bytes` as epoch 1 of `job_key` and places them at `location`.
async fn put(dest: &dyn Destination, job_key: &str, location: &str, bytes: &[u8]) -> Placement {
    let ledger = KitLedger::new();
    let mut writer = dest
        .begin(&id(job_key, 1), None, ledger.epoch(1), true)
        .await
        .expect("begin");
    push_all(writer.as_mut(), bytes).await;
    let written = writer.finish().await.expect("finish");
    assert_eq!(written.sha256(), sha(bytes), "the writer hashes what was pushed");
    assert_eq!(written.size(), bytes.len() as u64);
    written.place(location, true).await.expect("place")
}

/// `locations_are_distinct_and_held` (clause 1): one location per ids,
/// distinct for distinct ids, held by the destination.
pub async fn locations_are_distinct_and_held(dest: Arc<dyn Destination>) {
    let a = dest.location("w", "a");
    assert_eq!(a, dest.location("w", "a"), "clause 1: the same ids, the same location");
    for other in [
        dest.location("w", "b"),
        dest.location("w/a", ""),
        dest.location("wa", ""),
    ] {
        assert_ne!(a, other, "clause 1: distinct ids, distinct locations");
    }
    assert_ne!(
        dest.location("a/b", "c"),
        dest.location("a", "b/c"),
        "clause 1: ids are encoded"
    );
    assert!(dest.holds(&a), "clause 1: {a} is held by {}", dest.describe());
}

/// `placement_never_replaces` (clause 3): small, large and empty bodies
/// placed and read back; a second placement of the same bytes is already
/// there, of other bytes occupied and untouched.
pub async fn placement_never_replaces(dest: Arc<dyn Destination>) {
    for (n, len) in [(0u8, 1000usize), (1, LARGE), (2, 0)] {
        let location = dest.location("kit-place", &format!("a{n}"));
        assert!(
            !dest.exists(&location).await.expect("exists"),
            "clause 7: nothing there yet"
        );
        let bytes = body(n, len);
        let placed = put(dest.as_ref(), &format!("kit-place-{n}"), &location, &bytes).await;
        assert!(matches!(placed, Placement::Placed | Placement::Copied), "{placed:?}");
        assert!(dest.exists(&location).await.expect("exists"), "clause 7: it stands");
        assert!(
            read_all(dest.as_ref(), &location).await == bytes,
            "clause 7: the bytes read back"
        );
        let again = put(dest.as_ref(), &format!("kit-place-again-{n}"), &location, &bytes).await;
        assert_eq!(
            again,
            Placement::AlreadyThere,
            "clause 3: the same bytes count as placed"
        );
        let other = body(n + 100, len.max(1) + 1);
        let occupied = put(dest.as_ref(), &format!("kit-place-other-{n}"), &location, &other).await;
        assert_eq!(occupied, Placement::Occupied, "clause 3: other bytes are refused");
        assert!(
            read_all(dest.as_ref(), &location).await == bytes,
            "clause 3: the occupant is untouched"
        );
    }
}

/// `partials_resume_from_a_prefix` (clause 2): epoch 1 keeps a prefix;
/// epoch 2 resumes it and places the whole body; nothing of the job is left
/// after (clause 6).
pub async fn partials_resume_from_a_prefix(dest: Arc<dyn Destination>) {
    let (job, location) = ("kit-resume", dest.location("kit-resume", "a"));
    let bytes = body(7, LARGE);
    let ledger = KitLedger::new();
    let half = bytes.len() / 2 + 12_345;
    let mut first = dest
        .begin(&id(job, 1), None, ledger.epoch(1), true)
        .await
        .expect("begin 1");
    push_all(first.as_mut(), &bytes[..half]).await;
    // The body broke off: what arrived is kept.
    drop(first.finish().await.expect("finish 1"));
    let log2 = ledger.epoch(2);
    let priors = dest.priors(job, 2, log2.as_ref()).await.expect("priors");
    let prior = priors
        .iter()
        .filter(|p| p.job_key == job && p.epoch == 1)
        .max_by_key(|p| p.len)
        .expect("clause 2: epoch 1's partial is listed")
        .clone();
    assert!(prior.len <= half as u64, "clause 2: {} of {half} bytes kept", prior.len);
    assert!(prior.len > 0, "clause 2: the prefix is kept");
    assert_eq!(prior.validator_tag, id(job, 1).validator_tag);
    let mut second = dest
        .begin(&id(job, 2), Some(&prior), log2.clone(), true)
        .await
        .expect("begin 2");
    assert_eq!(
        second.len(),
        prior.len,
        "clause 2: the resumed partial starts with the prefix"
    );
    push_all(second.as_mut(), &bytes[prior.len as usize..]).await;
    let written = second.finish().await.expect("finish 2");
    assert_eq!(written.sha256(), sha(&bytes), "clause 2: the prefix is hashed in");
    let handle = written.handle();
    assert!(matches!(
        written.place(&location, true).await.expect("place"),
        Placement::Placed | Placement::Copied
    ));
    assert!(read_all(dest.as_ref(), &location).await == bytes, "clause 2: no splice");
    discard_twice(dest.as_ref(), &ledger, job, handle).await;
}

/// `stale_epochs_never_place` (clause 4): once epoch 2 has begun, epoch 1's
/// written bytes are not placed; epoch 2's are.
pub async fn stale_epochs_never_place(dest: Arc<dyn Destination>) {
    let (job, location) = ("kit-stale", dest.location("kit-stale", "a"));
    let old = body(11, LARGE);
    let new = body(12, LARGE);
    let ledger = KitLedger::new();
    let mut first = dest
        .begin(&id(job, 1), None, ledger.epoch(1), true)
        .await
        .expect("begin 1");
    push_all(first.as_mut(), &old).await;
    let stale = first.finish().await.expect("finish 1");
    // Epoch 2 takes over (the lease moved on) and starts from byte 0.
    let log2 = ledger.epoch(2);
    let priors = dest.priors(job, 2, log2.as_ref()).await.expect("priors");
    let mut second = dest
        .begin(&id(job, 2), None, log2.clone(), true)
        .await
        .expect("begin 2");
    let placed = stale.place(&location, true).await;
    assert!(
        placed.is_err(),
        "clause 4: a stale epoch's bytes were placed ({placed:?}) after epoch 2 began"
    );
    push_all(second.as_mut(), &new).await;
    let written = second.finish().await.expect("finish 2");
    let handle = written.handle();
    assert!(matches!(
        written.place(&location, true).await.expect("place 2"),
        Placement::Placed | Placement::Copied
    ));
    assert!(
        read_all(dest.as_ref(), &location).await == new,
        "clause 4: epoch 2's bytes stand"
    );
    dest.remove(priors, Some(log2.as_ref() as &dyn PartLog))
        .await
        .expect("remove epoch 1's partials");
    dest.discard(job, 2, Some(handle), log2.as_ref())
        .await
        .expect("discard");
    let all = dest.all_partials().await.expect("all partials");
    assert!(all.iter().all(|p| p.job_key != job), "clause 6: {all:?}");
}

/// `copies_never_replace` (clause 5): a duplicate placed from the first
/// copy, never replacing.
pub async fn copies_never_replace(dest: Arc<dyn Destination>) {
    let first = dest.location("kit-copy", "first");
    let bytes = body(21, 3000);
    put(dest.as_ref(), "kit-copy-1", &first, &bytes).await;
    let second = dest.location("kit-copy", "second");
    let copied = dest
        .place_copy(&first, &second, &sha(&bytes), true)
        .await
        .expect("copy");
    assert!(matches!(copied, Placement::Placed | Placement::Copied), "{copied:?}");
    assert!(
        read_all(dest.as_ref(), &second).await == bytes,
        "clause 5: the copy's bytes"
    );
    let again = dest
        .place_copy(&first, &second, &sha(&bytes), true)
        .await
        .expect("copy");
    assert_eq!(
        again,
        Placement::AlreadyThere,
        "clause 5: copied before counts as placed"
    );
    let taken = dest.location("kit-copy", "taken");
    let other = body(22, 10);
    put(dest.as_ref(), "kit-copy-2", &taken, &other).await;
    let occupied = dest.place_copy(&first, &taken, &sha(&bytes), true).await.expect("copy");
    assert_eq!(occupied, Placement::Occupied, "clause 5: a copy never replaces");
    assert!(
        read_all(dest.as_ref(), &taken).await == other,
        "clause 5: the occupant stands"
    );
}

/// `cleanup_is_idempotent` (clause 6): the partials of a writer dropped
/// without finishing (a crash, listed as a prefix if at all) and of a
/// finished one are removed, twice without error, and none is left.
pub async fn cleanup_is_idempotent(dest: Arc<dyn Destination>) {
    let job = "kit-cleanup";
    let ledger = KitLedger::new();
    let pushed = body(31, 5000);
    let mut crashed = dest
        .begin(&id(job, 1), None, ledger.epoch(1), true)
        .await
        .expect("begin 1");
    push_all(crashed.as_mut(), &pushed).await;
    drop(crashed);
    let log2 = ledger.epoch(2);
    let priors = dest.priors(job, 2, log2.as_ref()).await.expect("priors");
    assert!(
        priors
            .iter()
            .all(|p| p.job_key == job && p.epoch == 1 && p.len <= pushed.len() as u64),
        "clause 2: a crashed writer leaves a prefix of epoch 1, if anything: {priors:?}"
    );
    let log = Some(log2.as_ref() as &dyn PartLog);
    dest.remove(priors.clone(), log).await.expect("remove");
    dest.remove(priors, log)
        .await
        .expect("clause 6: removing again is no error");
    let mut finished = dest
        .begin(&id(job, 2), None, log2.clone(), true)
        .await
        .expect("begin 2");
    push_all(finished.as_mut(), &pushed).await;
    let written = finished.finish().await.expect("finish 2");
    let handle = written.handle();
    drop(written);
    discard_twice(dest.as_ref(), &ledger, job, handle).await;
}

/// `placed_bytes_read_back` (clause 7): nothing exists at a location before
/// it is placed; after, it exists and reads back as the bytes placed.
pub async fn placed_bytes_read_back(dest: Arc<dyn Destination>) {
    let location = dest.location("kit-read", "a");
    assert!(
        !dest.exists(&location).await.expect("exists"),
        "clause 7: nothing there before it is placed"
    );
    let bytes = body(41, 70_000);
    put(dest.as_ref(), "kit-read", &location, &bytes).await;
    assert!(dest.exists(&location).await.expect("exists"), "clause 7: it stands");
    assert!(
        read_all(dest.as_ref(), &location).await == bytes,
        "clause 7: exactly the placed bytes read back"
    );
    let elsewhere = dest.location("kit-read", "b");
    assert!(
        !dest.exists(&elsewhere).await.expect("exists"),
        "clause 7: another location holds nothing"
    );
}

/// `split_partials_keep_what_is_written` (clause 8): epoch 1 writes three
/// pieces out of order and crashes; epoch 2 resumes its split partial with
/// those ranges, writes the gaps and places the whole body.
pub async fn split_partials_keep_what_is_written(dest: Arc<dyn Destination>) {
    let (job, location) = ("kit-split", dest.location("kit-split", "a"));
    let bytes = body(51, LARGE);
    let len = bytes.len() as u64;
    let slice = |range: &Range<u64>| bytes[range.start as usize..range.end as usize].to_vec();
    let ledger = KitLedger::new();
    let Some(first) = dest
        .begin_split(&id(job, 1), len, None, ledger.epoch(1))
        .await
        .expect("begin_split 1")
    else {
        return;
    };
    let written = [len - 100_000..len, 0..300_000, 4_000_000..5_000_000];
    for range in &written {
        first.write_at(range.start, slice(range)).await.expect("write_at");
    }
    let probe = 4_000_500..4_001_500;
    let back = first.read_at(probe.start, vec![0; 1000]).await.expect("read_at");
    assert!(
        back == slice(&probe),
        "clause 8: bytes read back where they were written"
    );
    // A crash: the writer is dropped.
    drop(first);
    let log2 = ledger.epoch(2);
    let priors = dest.priors(job, 2, log2.as_ref()).await.expect("priors");
    let prior = priors
        .iter()
        .find(|p| p.job_key == job && p.epoch == 1)
        .expect("clause 8: epoch 1's split partial is listed");
    assert_eq!(
        prior.validator_tag, None,
        "clause 8: a split partial is never a prefix to resume"
    );
    let second = dest
        .begin_split(&id(job, 2), len, Some((prior, &written)), log2.clone())
        .await
        .expect("begin_split 2")
        .expect("clause 8: a destination that began a split partial resumes one");
    for range in &written {
        let back = second
            .read_at(range.start, vec![0; slice(range).len()])
            .await
            .expect("read_at");
        assert!(
            back == slice(range),
            "clause 8: the resumed partial starts with the written ranges"
        );
    }
    for gap in Ranges::of(written.iter().cloned()).missing(len) {
        second.write_at(gap.start, slice(&gap)).await.expect("write_at");
    }
    let done = second.finish(sha(&bytes), len).await.expect("finish");
    assert_eq!((done.sha256(), done.size()), (sha(&bytes).as_str(), len));
    let handle = done.handle();
    assert!(matches!(
        done.place(&location, true).await.expect("place"),
        Placement::Placed | Placement::Copied
    ));
    assert!(
        read_all(dest.as_ref(), &location).await == bytes,
        "clause 8: placed whole"
    );
    discard_twice(dest.as_ref(), &ledger, job, handle).await;
}

/// Defines [`CHECKS`] and [`run_all`] from the one list of checks, in the
/// order of the clauses.
macro_rules! checks {
    ($($check:ident),+) => {
        /// The name of every check, one per clause of the
        /// [`Destination`] contract, in its order.
        pub const CHECKS: &[&str] = &[$(stringify!($check)),+];

        /// Every clause, one after the other ([`CHECKS`]).
        pub async fn run_all(dest: Arc<dyn Destination>) {
            dest.probe().await.expect("probe");
            $($check(Arc::clone(&dest)).await;)+
        }
    };
}

checks!(
    locations_are_distinct_and_held,
    partials_resume_from_a_prefix,
    placement_never_replaces,
    stale_epochs_never_place,
    copies_never_replace,
    cleanup_is_idempotent,
    placed_bytes_read_back,
    split_partials_keep_what_is_written
);

/// Whether `clause` panics (the kit's negative tests).
pub async fn fails<F: std::future::Future<Output = ()>>(clause: F) -> bool {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(clause).catch_unwind().await.is_err()
}

#[cfg(test)]
mod tests {
    use super::CHECKS;
    use crate::conformance::contract_clauses;

    #[test]
    fn every_contract_clause_is_one_check_of_its_name() {
        let clauses = contract_clauses(include_str!("mod.rs"));
        assert_eq!(
            clauses, CHECKS,
            "the clauses of the Destination # Contract, in order, are the checks run_all runs"
        );
    }
}
