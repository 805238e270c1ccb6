//! The destination conformance kit on a real S3-compatible server
//! (SeaweedFS `weed mini`, started by the test), with its negative tests,
//! and the capability probe.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::ObjectStore;
use oncefetch_core::destination::conformance::{self, fails, IgnoresStaleness};
use oncefetch_core::destination::{
    Destination, DestinationOptions, PartLog, PartialId, PartialWrite, Placement, Prior, ReadStream, Written,
};
use oncefetch_dest_object_store::ObjectDest;
use oncefetch_test_seaweedfs::Seaweed;

fn open(server: &Seaweed, url: &str) -> ObjectDest {
    // SeaweedFS without identities takes any signature.
    std::env::set_var("AWS_ACCESS_KEY_ID", "oncefetch-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "oncefetch-test");
    let options = DestinationOptions {
        endpoint: Some(server.endpoint()),
        path_style: true,
    };
    ObjectDest::open(url, &options).expect("open the bucket")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_keeps_the_destination_contract() {
    let Some(server) = Seaweed::start("kit", &["kit"]) else {
        return;
    };
    let dest = Arc::new(open(&server, "s3://kit/some/prefix"));
    conformance::run_all(dest).await;
    let left = server.multipart_uploads("kit");
    assert!(left.is_empty(), "no multipart upload is left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_bucket_writer_that_completes_a_stale_epochs_upload() {
    let Some(server) = Seaweed::start("stale", &["stale"]) else {
        return;
    };
    let dest: Arc<dyn Destination> = Arc::new(open(&server, "s3://stale/p"));
    let blind = Arc::new(IgnoresStaleness(dest));
    assert!(fails(conformance::stale_epochs_never_place(blind)).await);
}

/// The bucket, but placing first deletes whatever stands at the key: a
/// destination that overwrites.
#[derive(Debug)]
struct Overwrites(ObjectDest);

#[derive(Debug)]
struct OverwritingPartial(Box<dyn PartialWrite>, ObjectDest);

#[derive(Debug)]
struct OverwritingWritten(Box<dyn Written>, ObjectDest);

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
        let key = location.strip_prefix("s3://over/").expect("in the bucket");
        let _ = self.1.store().delete(&Path::from(key)).await;
        self.0.place(location, durable).await
    }
}

#[async_trait]
impl Destination for Overwrites {
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
        let inner = self.0.begin(id, resume, log, durable).await?;
        Ok(Box::new(OverwritingPartial(inner, self.0.clone())))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_bucket_writer_that_overwrites() {
    let Some(server) = Seaweed::start("over", &["over"]) else {
        return;
    };
    let dest = Arc::new(Overwrites(open(&server, "s3://over")));
    assert!(fails(conformance::placement_never_replaces(dest)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_the_probe_naming_it() {
    let Some(server) = Seaweed::start("nobucket", &["there"]) else {
        return;
    };
    let dest = open(&server, "s3://not-there/p");
    let err = dest.probe().await.expect_err("no such bucket").to_string();
    assert!(err.contains("s3://not-there/p"), "{err}");
}
