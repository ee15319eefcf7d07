//! One sender task: a long-lived `Peer.Stream` call to one peer, fed with batches of messages.

use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{connect, Local};
use crate::peerpb::peer_client::PeerClient;
use crate::peerpb::RaftBatch;
use crate::raft::RaftMsg;

use super::{MAX_BATCH_BYTES, MAX_BATCH_MSGS};
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Batches queued for the stream before the lane waits for it to take one.
const STREAM_QUEUE: usize = 8;
/// How long a batch may wait for the stream to take it before the lane gives the stream up and
/// reconnects. HTTP/2 keepalive only catches a connection that stops answering pings; a stream
/// whose body makes no progress while its connection still answers them (a wedged proxy or
/// sidecar, a peer that stopped reading) is caught only here.
pub(super) const STALL: Duration = Duration::from_secs(2);

/// Runs until the transport drops the peer.
pub async fn run(
    local: Local,
    to: u64,
    urls: Vec<String>,
    lane: &'static str,
    mut rx: mpsc::Receiver<Message>,
    stats: std::sync::Arc<crate::metrics::PeerStats>,
) {
    let peer = format!("{to:x}");
    let mut backoff = MIN_BACKOFF;
    // Whether the peer was last seen taking our batches: the warnings and the "again" line are
    // logged on a change, not on every retry.
    let mut was_up = true;
    let down = |was_up: &mut bool, what: &str, error: &dyn std::fmt::Display| {
        if std::mem::replace(was_up, false) {
            tracing::warn!(%peer, lane, %error, "{what}");
        }
    };
    loop {
        // Connect lazily: on the first message to send.
        let Some(first) = rx.recv().await else {
            return;
        };
        let channel = match connect(&local, &urls).await {
            Ok(ch) => ch,
            Err(e) => {
                down(&mut was_up, "peer unreachable", &e);
                // What is queued is stale by the time the peer is back; Raft resends.
                while rx.try_recv().is_ok() {}
                let _ = local.raft_tx.send(RaftMsg::Unreachable(to));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let mut client = PeerClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        let (batch_tx, batch_rx) = mpsc::channel::<RaftBatch>(STREAM_QUEUE);
        let mut call =
            tokio::spawn(async move { client.stream(ReceiverStream::new(batch_rx)).await });
        // The call can end while we still hold batches (the peer answered with an error before
        // reading them all), so every wait below also watches for its end.
        let mut ended = None;
        let mut stalled = false;
        let mut sent_any = false;
        let mut next = Some(first);
        loop {
            let m = match next.take() {
                Some(m) => m,
                None => tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => m,
                        None => {
                            call.abort();
                            return;
                        }
                    },
                    r = &mut call => {
                        ended = Some(r);
                        break;
                    }
                },
            };
            // The stream took everything given to it before this message came: the peer is up.
            if sent_any && batch_tx.capacity() == STREAM_QUEUE {
                if !was_up {
                    tracing::info!(%peer, lane, "peer reachable again");
                    was_up = true;
                }
                backoff = MIN_BACKOFF;
            }
            let mut size = 0;
            let mut messages = Vec::new();
            push(&mut messages, &mut size, &m);
            while messages.len() < MAX_BATCH_MSGS && size < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => push(&mut messages, &mut size, &m),
                    Err(_) => break,
                }
            }
            stats.sent_bytes.add(size as u64);
            let batch = RaftBatch {
                cluster_id: local.cluster_id,
                from: local.id,
                to,
                messages,
            };
            tokio::select! {
                sent = tokio::time::timeout(STALL, batch_tx.send(batch)) => match sent {
                    Ok(Ok(())) => sent_any = true,
                    Ok(Err(_)) => break,
                    Err(_) => {
                        stalled = true;
                        call.abort();
                        break;
                    }
                },
                r = &mut call => {
                    ended = Some(r);
                    break;
                }
            }
        }
        drop(batch_tx);
        let ended = match ended {
            Some(r) => r,
            None => call.await,
        };
        match ended {
            _ if stalled => {
                let error = format!("no batch taken for {} s", STALL.as_secs());
                down(&mut was_up, "peer stream stalled; reconnecting", &error);
                // As when unreachable: what is queued is stale by now.
                while rx.try_recv().is_ok() {}
            }
            Ok(Err(status)) if super::service::says_removed(&status) => {
                tracing::error!(%peer, "peer says this member was removed from the cluster");
                let _ = local.raft_tx.send(RaftMsg::RemovedFromCluster);
                return;
            }
            Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                tracing::error!(%peer, reason = status.message(), "peer refused our messages");
            }
            Ok(Err(status)) => down(&mut was_up, "peer stream ended", &status),
            _ => {}
        }
        let _ = local.raft_tx.send(RaftMsg::Unreachable(to));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn push(out: &mut Vec<Vec<u8>>, size: &mut usize, m: &Message) {
    match m.write_to_bytes() {
        Ok(bytes) => {
            *size += bytes.len();
            out.push(bytes);
        }
        Err(e) => tracing::error!(error = %e, "raft message does not encode"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use tonic::{Request, Response, Status, Streaming};

    use super::*;
    use crate::peerpb;
    use crate::peerpb::peer_server::{Peer, PeerServer};

    /// A peer that accepts streams and never reads them, on a connection that still answers
    /// HTTP/2 pings: what a wedged proxy in front of a live member looks like.
    struct Deaf {
        streams: Arc<AtomicUsize>,
    }

    fn refused<T>() -> Result<Response<T>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    #[tonic::async_trait]
    impl Peer for Deaf {
        async fn stream(
            &self,
            request: Request<Streaming<peerpb::RaftBatch>>,
        ) -> Result<Response<peerpb::StreamAck>, Status> {
            self.streams.fetch_add(1, Ordering::SeqCst);
            let _unread = request;
            std::future::pending().await
        }
        async fn send(
            &self,
            _: Request<peerpb::RaftBatch>,
        ) -> Result<Response<peerpb::StreamAck>, Status> {
            refused()
        }
        async fn snapshot(
            &self,
            _: Request<Streaming<peerpb::SnapshotChunk>>,
        ) -> Result<Response<peerpb::SnapshotAck>, Status> {
            refused()
        }
        async fn members(
            &self,
            _: Request<peerpb::MembersRequest>,
        ) -> Result<Response<peerpb::MembersResponse>, Status> {
            refused()
        }
        async fn lease_renew(
            &self,
            _: Request<peerpb::LeaseRenewRequest>,
        ) -> Result<Response<peerpb::LeaseRenewResponse>, Status> {
            refused()
        }
        async fn lease_time_to_live(
            &self,
            _: Request<peerpb::LeaseTtlRequest>,
        ) -> Result<Response<peerpb::LeaseTtlResponse>, Status> {
            refused()
        }
    }

    /// Issue 11, the 30-minute run's bug 2: a lane whose stream takes nothing gives it up, tells
    /// Raft the peer is unreachable and opens a new stream, instead of waiting for ever.
    #[tokio::test]
    async fn a_stream_that_takes_nothing_is_given_up_and_opened_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let streams = Arc::new(AtomicUsize::new(0));
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(1024)
            .add_service(PeerServer::new(Deaf {
                streams: streams.clone(),
            }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let server = tokio::spawn(server);
        let (raft_tx, raft_rx) = std::sync::mpsc::channel();
        let local = Local {
            id: 1,
            cluster_id: 7,
            bind: None,
            raft_tx,
        };
        let (tx, rx) = mpsc::channel(4096);
        let lane = tokio::spawn(run(
            local,
            2,
            vec![format!("http://{addr}")],
            "append",
            rx,
            crate::metrics::peer(2),
        ));
        let mut m = Message::default();
        m.to = 2;
        m.from = 1;
        m.context = vec![0u8; 16 * 1024].into();
        let deadline = Instant::now() + 5 * STALL;
        while streams.load(Ordering::SeqCst) < 2 {
            assert!(
                Instant::now() < deadline,
                "the lane still waits on its first stream after {:?}",
                5 * STALL
            );
            let _ = tx.try_send(m.clone());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            raft_rx
                .try_iter()
                .any(|r| matches!(r, RaftMsg::Unreachable(2))),
            "Raft was not told the peer is unreachable"
        );
        lane.abort();
        server.abort();
    }
}
