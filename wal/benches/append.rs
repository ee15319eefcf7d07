//! WAL append plus fdatasync, per batch size: what one Raft Ready costs on this disk.

use concord_wal::{Marker, Wal, WalOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft::eraftpb::{ConfState, Entry, HardState};

fn entry(index: u64, size: usize) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = 1;
    e.data = vec![7u8; size].into();
    e
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_sync");
    group.sample_size(20);
    for batch in [1usize, 16, 128] {
        let dir = tempfile::tempdir().unwrap();
        let marker = Marker {
            index: 0,
            term: 0,
            conf_state: ConfState::default(),
        };
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default(), marker).unwrap();
        let mut next = 1u64;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let entries: Vec<Entry> = (0..batch as u64).map(|i| entry(next + i, 256)).collect();
                next += batch as u64;
                let mut hs = HardState::default();
                hs.term = 1;
                hs.commit = next - 1;
                wal.append(&entries, Some(&hs)).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
