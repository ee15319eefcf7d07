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
    let mut was_up = true;
    loop {
        // Connect lazily: on the first message to send.
        let Some(first) = rx.recv().await else {
            return;
        };
        let channel = match connect(&local, &urls).await {
            Ok(ch) => ch,
            Err(e) => {
                if was_up {
                    tracing::warn!(%peer, lane, error = %e, "peer unreachable");
                    was_up = false;
                }
                // What is queued is stale by the time the peer is back; Raft resends.
                while rx.try_recv().is_ok() {}
                let _ = local.raft_tx.send(RaftMsg::Unreachable(to));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if !was_up {
            tracing::info!(%peer, lane, "peer reachable again");
            was_up = true;
        }
        backoff = MIN_BACKOFF;
        let mut client = PeerClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        let (batch_tx, batch_rx) = mpsc::channel::<RaftBatch>(8);
        let mut call =
            tokio::spawn(async move { client.stream(ReceiverStream::new(batch_rx)).await });
        // The call can end while we still hold batches (the peer answered with an error before
        // reading them all), so every wait below also watches for its end.
        let mut ended = None;
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
                sent = batch_tx.send(batch) => if sent.is_err() { break },
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
            Ok(Err(status)) if super::service::says_removed(&status) => {
                tracing::error!(%peer, "peer says this member was removed from the cluster");
                let _ = local.raft_tx.send(RaftMsg::RemovedFromCluster);
                return;
            }
            Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                tracing::error!(%peer, reason = status.message(), "peer refused our messages");
            }
            Ok(Err(status)) => {
                tracing::debug!(%peer, lane, error = %status, "peer stream ended");
            }
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
