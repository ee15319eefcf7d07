//! Writers run while the member is SIGKILLed and restarted, several times. Every acknowledged
//! write must be there afterwards, and no transaction may be half-applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_client::{Client, Compare, CompareOp, GetOptions, TxnOp};
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
        let read_all = |prefix: &str| -> HashMap<String, (String, i64)> {
            let r = rt
                .block_on(client.get_with(prefix, GetOptions::new().prefix()))
                .unwrap();
            r.kvs
                .into_iter()
                .map(|kv| {
                    let k = String::from_utf8(kv.key).unwrap();
                    (k, (String::from_utf8(kv.value).unwrap(), kv.mod_revision))
                })
                .collect()
        };
        let puts = read_all("put/");
        let txns = read_all("txn/");
        let acked = acked.lock().unwrap();
        assert!(
            !acked.puts.is_empty() && !acked.txns.is_empty(),
            "writers made progress"
        );
        let order = |v: &str| -> (usize, u64) {
            let (r, n) = v[1..].split_once("-n").unwrap();
            (r.parse().unwrap(), n.parse().unwrap())
        };
        for (key, value) in &acked.puts {
            let (got, _) = puts
                .get(key)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key} is missing"));
            // A later, unacknowledged put of the same key may have landed too; never an older one.
            assert!(
                order(got) >= order(value),
                "{key}: {got} is older than acknowledged {value}"
            );
        }
        for id in &acked.txns {
            let a = txns.get(&format!("txn/a/{id}"));
            let b = txns.get(&format!("txn/b/{id}"));
            assert!(a.is_some(), "round {round}: acknowledged txn {id} lost");
            assert_eq!(
                a.map(|x| x.1),
                b.map(|x| x.1),
                "acknowledged txn {id} half-applied"
            );
        }
        // Unacknowledged txns are all-or-nothing too.
        for id in &attempted_txns {
            let a = txns.get(&format!("txn/a/{id}")).map(|x| x.1);
            let b = txns.get(&format!("txn/b/{id}")).map(|x| x.1);
            assert_eq!(a, b, "txn {id} half-applied");
        }
    }
}
