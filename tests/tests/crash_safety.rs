//! Writers run while the member is SIGKILLed and restarted, several times. Every acknowledged
//! write must be there afterwards, and no transaction may be half-applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_client::{Client, Compare, CompareOp, TxnOp};
use concord_tests::Concord;

const ROUNDS: usize = 5;
const WRITERS: usize = 8;

#[derive(Default)]
struct Acked {
    /// key -> last acknowledged value
    puts: HashMap<String, String>,
    /// txn ids whose commit was acknowledged
    txns: Vec<String>,
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut c = Concord::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut attempted_txns: Vec<String> = Vec::new();

    for round in 0..ROUNDS {
        let endpoint = c.endpoint();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let acked = acked.clone();
            let endpoint = endpoint.clone();
            tasks.push(rt.spawn(async move {
                let client = Client::connect([endpoint]).await.expect("connect");
                let mut tried = Vec::new();
                for n in 0u64.. {
                    if w % 2 == 0 {
                        // Plain puts, each key overwritten a few times.
                        let key = format!("put/{w}/{}", n % 50);
                        let value = format!("r{round}-n{n}");
                        if client.put(key.clone(), value.clone()).await.is_err() {
                            break;
                        }
                        acked.lock().unwrap().puts.insert(key, value);
                    } else {
                        // A txn writing two keys that must appear together.
                        let id = format!("{round}-{w}-{n}");
                        tried.push(id.clone());
                        let r = client
                            .txn()
                            .when([Compare::version(format!("txn/a/{id}"), CompareOp::Equal, 0)])
                            .and_then([
                                TxnOp::put(format!("txn/a/{id}"), id.clone()),
                                TxnOp::put(format!("txn/b/{id}"), id.clone()),
                            ])
                            .commit()
                            .await;
                        match r {
                            Ok(resp) => {
                                assert!(resp.succeeded);
                                acked.lock().unwrap().txns.push(id);
                            }
                            Err(_) => break,
                        }
                    }
                }
                tried
            }));
        }
        std::thread::sleep(Duration::from_millis(1500));
        c.kill9();
        for t in tasks {
            attempted_txns.extend(rt.block_on(t).unwrap());
        }
        c.restart();

        let client = rt.block_on(Client::connect([c.endpoint()])).unwrap();
        let acked = acked.lock().unwrap();
        assert!(
            !acked.puts.is_empty() && !acked.txns.is_empty(),
            "writers made progress"
        );
        for (key, value) in &acked.puts {
            let got = rt.block_on(client.get(key.clone())).unwrap();
            let kv = got
                .kvs
                .first()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key} is missing"));
            // A later, unacknowledged put of the same key may have landed too; it is never older.
            let got_value = String::from_utf8_lossy(&kv.value).to_string();
            let n = |v: &str| v.rsplit("-n").next().unwrap().parse::<u64>().unwrap();
            let r = |v: &str| v[1..].split('-').next().unwrap().parse::<usize>().unwrap();
            assert!(
                (r(&got_value), n(&got_value)) >= (r(value), n(value)),
                "{key}: {got_value} older than acked {value}"
            );
        }
        for id in &acked.txns {
            let a = rt.block_on(client.get(format!("txn/a/{id}"))).unwrap();
            let b = rt.block_on(client.get(format!("txn/b/{id}"))).unwrap();
            assert_eq!(a.kvs.len(), 1, "acknowledged txn {id} lost");
            assert_eq!(b.kvs.len(), 1, "acknowledged txn {id} half-applied");
            assert_eq!(a.kvs[0].mod_revision, b.kvs[0].mod_revision);
        }
        // Unacknowledged txns are all-or-nothing too.
        for id in &attempted_txns {
            let a = rt
                .block_on(client.get(format!("txn/a/{id}")))
                .unwrap()
                .kvs
                .len();
            let b = rt
                .block_on(client.get(format!("txn/b/{id}")))
                .unwrap()
                .kvs
                .len();
            assert_eq!(a, b, "txn {id} half-applied");
        }
    }
}
