//! Sending one snapshot: the leader's checkpoint directory, read in chunks on a blocking thread
//! and streamed on a `Peer.Snapshot` call, with the Raft message in the first chunk.

use std::path::PathBuf;

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{connect, Local};
use crate::peerpb::peer_client::PeerClient;
use crate::peerpb::SnapshotChunk;
use crate::raft::RaftMsg;
use crate::state::snapshot;

/// How long a chunk may wait for the stream to take it.
const CHUNK_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends the snapshot and tells the Raft thread how it went.
pub async fn run(local: Local, urls: Vec<String>, msg: Message, dir: PathBuf) {
    let to = msg.to;
    let index = msg.get_snapshot().get_metadata().index;
    let ok = match send(&local, &urls, msg, dir).await {
        Ok(()) => {
            tracing::info!(to = %format!("{to:x}"), index, "snapshot sent");
            true
        }
        Err(e) => {
            tracing::warn!(to = %format!("{to:x}"), index, error = %e, "sending snapshot failed");
            false
        }
    };
    let _ = local.raft_tx.send(RaftMsg::SnapshotSent { to, ok });
    if !ok {
        let _ = local.raft_tx.send(RaftMsg::Unreachable(to));
    }
}

async fn send(
    local: &Local,
    urls: &[String],
    mut msg: Message,
    dir: PathBuf,
) -> Result<(), String> {
    let channel = connect(local, urls).await?;
    let mut client = PeerClient::new(channel).max_encoding_message_size(usize::MAX);
    // The data names the leader's directory; the follower has no use for it.
    msg.mut_snapshot().data = Default::default();
    let head = msg.write_to_bytes().map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<SnapshotChunk>(4);
    let (cluster_id, from, to) = (local.cluster_id, local.id, msg.to);
    // Files are read on a blocking thread, one chunk at a time: the snapshot is never whole in
    // memory, and the channel's bound keeps at most a few chunks in flight.
    let runtime = tokio::runtime::Handle::current();
    let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let chunks = snapshot::ChunkReader::open(&dir).map_err(|e| e.to_string())?;
        let mut first = true;
        for chunk in chunks {
            let c = chunk.map_err(|e| e.to_string())?;
            let out = SnapshotChunk {
                cluster_id,
                from,
                to,
                raft_snapshot_meta: if first { head.clone() } else { Vec::new() },
                file_name: c.file_name,
                offset: c.offset,
                data: c.data,
                crc32: c.crc32,
                last: c.last,
            };
            first = false;
            // A stream that takes nothing (the lane's STALL, with room for a slow disk at the
            // follower) fails the transfer; Raft sends the snapshot again.
            match runtime.block_on(tokio::time::timeout(CHUNK_STALL, tx.send(out))) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("the snapshot call ended early".into()),
                Err(_) => return Err(format!("the peer took no chunk for {CHUNK_STALL:?}")),
            }
        }
        Ok(())
    });
    let call = client.snapshot(ReceiverStream::new(rx));
    tokio::pin!(call);
    let mut reader = reader;
    // Whichever ends first: a reader that fails (or stalls) ends the transfer at once, without
    // waiting for an answer that may never come.
    let (ack, read) = tokio::select! {
        ack = &mut call => (ack, reader.await),
        read = &mut reader => {
            if let Ok(Err(e)) = &read {
                return Err(e.clone());
            }
            (call.await, read)
        }
    };
    let ack = ack.map_err(|s| s.to_string())?.into_inner();
    read.map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the checkpoint: {e}"))?;
    if ack.accepted {
        Ok(())
    } else {
        Err(format!("refused: {}", ack.reason))
    }
}
