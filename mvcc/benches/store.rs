//! The state machine's hot paths: applying a batch of puts, and range scans at the current and
//! at a past revision.

use concord_mvcc::{Command, PutRequest, RangeRequest, Store, StoreOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn key(i: u64) -> Vec<u8> {
    format!("key/{i:012}").into_bytes()
}

fn put(i: u64) -> Command {
    Command::Put(PutRequest {
        key: key(i),
        value: vec![b'v'; 256],
        ..PutRequest::default()
    })
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvcc_apply");
    for batch in [1u64, 64, 512] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        let mut index = 0u64;
        let mut n = 0u64;
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let cmds: Vec<Command> = (0..batch).map(|i| put((n + i) % 100_000)).collect();
                n += batch;
                index += 1;
                store.apply(index, &cmds).unwrap();
            })
        });
    }
    group.finish();
}

fn range(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
    // 10,000 keys written three times: revisions 2..=30,001.
    let mut index = 0;
    for _round in 0..3 {
        for chunk in (0..10_000u64).collect::<Vec<_>>().chunks(500) {
            index += 1;
            let cmds: Vec<Command> = chunk.iter().map(|i| put(*i)).collect();
            store.apply(index, &cmds).unwrap();
        }
    }
    let current = store.revision();
    let mut group = c.benchmark_group("mvcc_range_100_keys");
    group.throughput(Throughput::Elements(100));
    for (name, revision) in [("current", 0), ("past", current - 15_000)] {
        let req = RangeRequest {
            key: key(5_000),
            range_end: key(5_100),
            revision,
            ..RangeRequest::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = store.view().range(&req).unwrap();
                assert_eq!(r.kvs.len(), 100);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, apply, range);
criterion_main!(benches);
