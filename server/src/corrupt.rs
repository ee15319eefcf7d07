//! The periodic corruption check (`--experimental-corrupt-check-time`), as etcd's: the leader
//! hashes its history (HashKV) at its current revision and asks every other member for its hash
//! at the same revision, over the members' client URLs. A member whose hash differs while its
//! compaction revision is the same holds different data: the leader raises the CORRUPT alarm
//! for it, which stops every KV request cluster-wide until an operator deals with it.
//!
//! A member that has not applied the revision yet answers "future revision" and is skipped
//! this round; one that compacted differently cannot be compared and is skipped too.

use std::sync::Arc;
use std::time::Duration;

use concord_mvcc::AlarmType;
use concord_proto::etcdserverpb as pb;

use crate::core::Core;

/// How long one member may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until the task is aborted.
pub async fn run(core: Arc<Core>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if core.is_leader() {
            check(&core).await;
        }
    }
}

/// One round: raises CORRUPT for every member whose hash differs from this one's.
async fn check(core: &Core) {
    let Ok((_, mine)) = core.read(|view| view.hash_kv(0)).await else {
        return;
    };
    for m in core.members().list() {
        if m.id == core.member.id || m.is_learner {
            continue;
        }
        let Some(theirs) = ask(&m.client_urls, mine.revision).await else {
            continue;
        };
        if theirs.compact_revision == mine.compact_revision && theirs.hash != mine.hash {
            tracing::error!(
                member = %format!("{:x}", m.id),
                revision = mine.revision,
                "a member's HashKV differs from the leader's at the same compaction revision"
            );
            core.raise_alarm(m.id, AlarmType::Corrupt);
        }
    }
}

/// The member's HashKV at `revision`, from the first of its URLs that answers.
async fn ask(urls: &[String], revision: i64) -> Option<pb::HashKvResponse> {
    for url in urls {
        let call = async {
            let mut c = pb::maintenance_client::MaintenanceClient::connect(url.clone())
                .await
                .ok()?;
            c.hash_kv(pb::HashKvRequest { revision })
                .await
                .ok()
                .map(|r| r.into_inner())
        };
        if let Ok(Some(r)) = tokio::time::timeout(ASK_TIMEOUT, call).await {
            return Some(r);
        }
    }
    None
}
