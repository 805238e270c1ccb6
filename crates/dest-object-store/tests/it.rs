//! The destination conformance kit on a real S3-compatible server
//! (SeaweedFS `weed mini`, started by the test), with its negative tests,
//! and the capability probe.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;
use oncefetch_core::destination::conformance::{self, fails, IgnoresStaleness, Overwrites};
use oncefetch_core::destination::{Destination, DestinationOptions};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_bucket_writer_that_overwrites() {
    let Some(server) = Seaweed::start("over", &["over"]) else {
        return;
    };
    // Placing first deletes whatever stands at the key.
    let bucket = open(&server, "s3://over");
    let store = bucket.store();
    let clear: conformance::Clear = Arc::new(move |location| {
        let store = Arc::clone(&store);
        Box::pin(async move {
            let key = location.strip_prefix("s3://over/").expect("in the bucket");
            let _ = store.delete(&Path::from(key)).await;
        })
    });
    let dest = Arc::new(Overwrites::new(Arc::new(bucket), clear));
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
