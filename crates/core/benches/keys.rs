//! `job_key` and `op_key` throughput (target: under 1 µs per job key).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use oncefetch_core::{job_key, url::canonicalize, OpKeys};

fn keys(c: &mut Criterion) {
    let url = "https://example.org/pdf/2401.00001v2.pdf";
    c.bench_function("job_key", |b| {
        b.iter(|| job_key(black_box("work-0001"), black_box("arxiv-2024-001"), black_box(url)))
    });
    let job = job_key("work-0001", "arxiv-2024-001", url);
    c.bench_function("op_key_stream", |b| {
        b.iter(|| OpKeys { job_key: &job }.stream(black_box(url), black_box(1_048_576)))
    });
    c.bench_function("canonicalize", |b| {
        b.iter(|| canonicalize(black_box("HTTPS://Example.ORG:443/a/./b/../%7euser/paper.pdf#x")))
    });
}

criterion_group!(benches, keys);
criterion_main!(benches);
