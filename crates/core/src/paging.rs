//! Keyset paging through the ledger's listings: [`Pages`] reads
//! [`LedgerStore::jobs`] ([`JobPages`]) or [`LedgerStore::ops`]
//! ([`OpPages`]) one page at a time, each page starting after the last row
//! of the one before, so a listing holds one page however large the ledger.
//!
//! ```
//! # async fn listing(store: &dyn oncefetch_core::LedgerStore) -> oncefetch_core::StoreResult<()> {
//! use oncefetch_core::{JobPages, JobQuery, JobState};
//!
//! let query = JobQuery { state: Some(JobState::Success), limit: 1_000, ..JobQuery::default() };
//! let mut pages = JobPages::new(store, query);
//! while let Some(page) = pages.next().await? {
//!     for job in &page {
//!         println!("{}", job.job_key);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use futures::future::BoxFuture;

use crate::error::StoreResult;
use crate::job::{Job, JobQuery};
use crate::ledger::{LedgerStore, OpQuery, OpRecord};

/// A ledger listing's query, read page by page: its `limit` is the page
/// size, and each page resumes after the last row of the one before.
pub trait Keyset: Send + Sync {
    /// A row of the listing.
    type Row: Send;

    /// Rows per page (0: the whole listing in one page).
    fn limit(&self) -> usize;

    /// How many rows a read takes at most ([`Keyset::limit`], where 0 is
    /// no bound).
    fn max_rows(&self) -> usize {
        match self.limit() {
            0 => usize::MAX,
            limit => limit,
        }
    }

    /// Sets the rows per page.
    fn set_limit(&mut self, limit: usize);

    /// Reads one page from `store`.
    fn read<'s>(&'s self, store: &'s dyn LedgerStore) -> BoxFuture<'s, StoreResult<Vec<Self::Row>>>;

    /// Makes the next read start after `last`.
    fn resume_after(&mut self, last: &Self::Row);
}

impl Keyset for JobQuery {
    type Row = Job;

    fn limit(&self) -> usize {
        self.limit
    }

    fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    fn read<'s>(&'s self, store: &'s dyn LedgerStore) -> BoxFuture<'s, StoreResult<Vec<Job>>> {
        store.jobs(self)
    }

    fn resume_after(&mut self, last: &Job) {
        self.after = Some(last.job_key.clone());
    }
}

impl Keyset for OpQuery {
    type Row = OpRecord;

    fn limit(&self) -> usize {
        self.limit
    }

    fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    fn read<'s>(&'s self, store: &'s dyn LedgerStore) -> BoxFuture<'s, StoreResult<Vec<OpRecord>>> {
        store.ops(self)
    }

    fn resume_after(&mut self, last: &OpRecord) {
        self.after_seq = Some(last.seq);
    }
}

/// A listing read page by page; see the [module](self).
///
/// Every page it yields holds at least one row. A page shorter than the
/// limit is the last (an empty read ends the listing too), so a listing
/// takes one read more than it has full pages, and ends: each read starts
/// strictly after the rows already read.
#[derive(Debug)]
pub struct Pages<'a, Q> {
    store: &'a dyn LedgerStore,
    query: Q,
    done: bool,
}

/// [`LedgerStore::jobs`] page by page, in job-key order.
pub type JobPages<'a> = Pages<'a, JobQuery>;

/// [`LedgerStore::ops`] page by page, in `seq` order.
pub type OpPages<'a> = Pages<'a, OpQuery>;

impl<'a, Q: Keyset> Pages<'a, Q> {
    /// The listing `query` selects, from its cursor (`after`, `after_seq`)
    /// on, `query.limit` rows a page.
    pub fn new(store: &'a dyn LedgerStore, query: Q) -> Self {
        Self {
            store,
            query,
            done: false,
        }
    }

    /// Sets the size of the pages read from here on (a listing that wants
    /// only so many more rows need not read a whole page).
    pub fn set_limit(&mut self, limit: usize) {
        self.query.set_limit(limit);
    }

    /// The next page, or `None` once the listing is over.
    pub async fn next(&mut self) -> StoreResult<Option<Vec<Q::Row>>> {
        if self.done {
            return Ok(None);
        }
        let page = self.query.read(self.store).await?;
        match page.last() {
            Some(last) if page.len() == self.query.limit() => self.query.resume_after(last),
            _ => self.done = true,
        }
        Ok((!page.is_empty()).then_some(page))
    }

    /// The query that reads the next page (its cursor after the last row
    /// read), or `None` once the listing is over: what a client that pages
    /// itself asks for next.
    pub fn next_query(&self) -> Option<&Q> {
        (!self.done).then_some(&self.query)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::key::job_key;
    use crate::lease::{AcquireRequest, LeaseManager};
    use crate::memory::MemoryStore;
    use crate::{JobState, NewJob, OpKind};

    fn new_job(n: usize) -> NewJob {
        let url = format!("http://h/{n}");
        NewJob {
            job_key: job_key("w", &n.to_string(), &url),
            work_id: "w".to_owned(),
            artifact_id: n.to_string(),
            url: url.clone(),
            canonical_url: url,
            expected_sha256: None,
            expected_size: None,
            expected_content_type: None,
        }
    }

    /// A store holding `n` planned jobs.
    async fn planned(n: usize) -> MemoryStore {
        let store = MemoryStore::new();
        let jobs: Vec<NewJob> = (0..n).map(new_job).collect();
        store.plan(&jobs).await.unwrap();
        store
    }

    fn jobs(limit: usize) -> JobQuery {
        JobQuery {
            limit,
            ..JobQuery::default()
        }
    }

    /// Every page of `pages`, as page lengths and keys in order.
    async fn read_all<Q: Keyset>(
        mut pages: Pages<'_, Q>,
        key: impl Fn(&Q::Row) -> String,
    ) -> (Vec<usize>, Vec<String>) {
        let (mut lengths, mut keys) = (Vec::new(), Vec::new());
        // Bounded: no listing here has more than 16 pages.
        for _ in 0..16 {
            let Some(page) = pages.next().await.unwrap() else {
                return (lengths, keys);
            };
            lengths.push(page.len());
            keys.extend(page.iter().map(&key));
        }
        panic!("more than 16 pages");
    }

    fn job_key_of(job: &Job) -> String {
        job.job_key.clone()
    }

    /// All job keys, in order, read in one query.
    async fn all_keys(store: &MemoryStore) -> Vec<String> {
        store.jobs(&jobs(0)).await.unwrap().iter().map(job_key_of).collect()
    }

    #[tokio::test]
    async fn an_empty_ledger_has_no_pages() {
        let store = MemoryStore::new();
        let mut pages = JobPages::new(&store, jobs(3));
        assert!(pages.next().await.unwrap().is_none());
        assert!(pages.next_query().is_none());
        assert!(pages.next().await.unwrap().is_none(), "the listing stays over");
    }

    #[tokio::test]
    async fn pages_cover_every_job_once_in_key_order() {
        let store = planned(7).await;
        let (lengths, keys) = read_all(JobPages::new(&store, jobs(3)), job_key_of).await;
        assert_eq!(lengths, [3, 3, 1]);
        assert_eq!(keys, all_keys(&store).await);
    }

    #[tokio::test]
    async fn an_exact_multiple_of_the_page_size_ends_after_its_last_full_page() {
        let store = planned(6).await;
        let mut pages = JobPages::new(&store, jobs(3));
        let first = pages.next().await.unwrap().unwrap();
        let next = pages.next_query().expect("a full page may have more after it");
        assert_eq!(next.after.as_deref(), Some(first[2].job_key.as_str()));
        assert_eq!(pages.next().await.unwrap().map(|p| p.len()), Some(3));
        assert!(pages.next().await.unwrap().is_none());
        assert!(pages.next_query().is_none());
    }

    #[tokio::test]
    async fn a_limit_of_zero_is_one_page_of_everything() {
        let store = planned(5).await;
        let (lengths, _) = read_all(JobPages::new(&store, jobs(0)), job_key_of).await;
        assert_eq!(lengths, [5]);
    }

    #[tokio::test]
    async fn the_state_filter_holds_on_every_page() {
        let store = planned(7).await;
        let request = AcquireRequest {
            owner: "w".to_owned(),
            ttl: Duration::from_secs(60),
            limit: 4,
            max_attempts: 3,
        };
        let leased: Vec<String> = store
            .acquire(&request)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.job.job_key)
            .collect();
        let query = JobQuery {
            state: Some(JobState::Leased),
            ..jobs(2)
        };
        let (lengths, keys) = read_all(JobPages::new(&store, query), job_key_of).await;
        assert_eq!(lengths, [2, 2]);
        let mut expected = leased;
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[tokio::test]
    async fn a_listing_starts_after_its_cursor_and_takes_a_new_page_size() {
        let store = planned(7).await;
        let keys = all_keys(&store).await;
        let query = JobQuery {
            after: Some(keys[1].clone()),
            ..jobs(2)
        };
        let mut pages = JobPages::new(&store, query);
        assert_eq!(pages.next().await.unwrap().unwrap().len(), 2);
        pages.set_limit(10);
        let rest = pages.next().await.unwrap().unwrap();
        assert_eq!(rest.iter().map(job_key_of).collect::<Vec<_>>(), keys[4..]);
        assert!(pages.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn op_pages_follow_seq() {
        let store = planned(5).await;
        for (n, key) in all_keys(&store).await.iter().enumerate() {
            let op_key = format!("cleanup-{n}");
            store
                .note(key, &op_key, OpKind::Cleanup, &serde_json::json!(n))
                .await
                .unwrap();
        }
        let query = OpQuery {
            job_key: None,
            after_seq: None,
            limit: 2,
        };
        let (lengths, keys) = read_all(OpPages::new(&store, query), |op| op.op_key.clone()).await;
        assert_eq!(lengths, [2, 2, 1]);
        assert_eq!(keys, ["cleanup-0", "cleanup-1", "cleanup-2", "cleanup-3", "cleanup-4"]);
    }
}
