//! The watch dispatch step: one applied batch of 64 events matched against 10,000 single-key
//! watchers and 100 range watchers (walked, not matching), and queued on the stream.

use std::time::Duration;

use concord_mvcc::{Event, EventKind, KeyValue};
use concord_server::watch::{Delivery, Hub, Spec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn key(i: u64) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

fn dispatch(c: &mut Criterion) {
    let hub = Hub::start(1, Duration::from_secs(3600)).unwrap();
    let (stream, mut rx) = hub.open();
    for i in 0..10_000 {
        stream.add(
            Spec {
                key: key(i),
                ..Spec::default()
            },
            None,
        );
    }
    for i in 0..100 {
        stream.add(
            Spec {
                key: format!("a/{i:03}/").into_bytes(),
                range_end: format!("a/{i:03}0").into_bytes(),
                ..Spec::default()
            },
            None,
        );
    }
    let mut revision = 1i64;
    let mut group = c.benchmark_group("watch_dispatch");
    group.throughput(Throughput::Elements(64));
    group.bench_function("64_events_10k_watchers", |b| {
        b.iter(|| {
            revision += 1;
            let events: Vec<Event> = (0..64u64)
                .map(|i| Event {
                    kind: EventKind::Put,
                    kv: KeyValue {
                        key: key((revision as u64 * 64 + i) % 10_000),
                        mod_revision: revision,
                        value: vec![b'v'; 64],
                        ..KeyValue::default()
                    },
                    prev_kv: None,
                })
                .collect();
            hub.publish(revision, events);
            for _ in 0..64 {
                let d = rx.blocking_recv().expect("a delivery");
                stream.victims.dequeued(&d);
                assert!(matches!(d, Delivery::Events { .. }));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
