//! Asking other members about the cluster before starting: a member joining an existing cluster
//! learns its id there, and every member checks that the peers it can reach belong to the
//! cluster it was configured for (a wrong `--initial-cluster-token` or a data dir from another
//! cluster is refused with a reason, not left to fail quietly).

use std::time::Duration;

use futures::future::join_all;

use crate::peerpb::peer_client::PeerClient;
use crate::peerpb::{MembersRequest, MembersResponse};

const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a joining member keeps asking before it gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

async fn ask(url: &str) -> Result<MembersResponse, String> {
    let fut = async {
        let mut client = PeerClient::connect(url.to_string())
            .await
            .map_err(|e| e.to_string())?;
        client
            .members(MembersRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.message().to_string())
    };
    tokio::time::timeout(ASK_TIMEOUT, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// The members a peer knows: id and peer URLs.
pub type PeerList = Vec<(u64, Vec<String>)>;

/// Refuses to start if a reachable peer belongs to another cluster. Unreachable peers are fine
/// (they may not have started yet); they refuse our messages later if they disagree. Returns
/// the member list of a peer that answered, if any.
pub async fn check_cluster(
    peers: &[String],
    cluster_id: u64,
    member_id: u64,
) -> Result<Option<PeerList>, String> {
    let answers = join_all(peers.iter().map(|u| async move { (u, ask(u).await) })).await;
    let mut list = None;
    for (url, answer) in answers {
        let Ok(r) = answer else { continue };
        if list.is_none() && r.cluster_id == cluster_id {
            list = Some(
                r.members
                    .iter()
                    .map(|m| (m.id, m.peer_urls.clone()))
                    .collect(),
            );
        }
        if r.cluster_id != cluster_id {
            return Err(format!(
                "the member at {url} belongs to cluster {:x}, but this member ({member_id:x}) \
                 is configured for cluster {cluster_id:x}: check --initial-cluster and \
                 --initial-cluster-token, or whether this data dir belongs to another cluster",
                r.cluster_id
            ));
        }
    }
    Ok(list)
}

/// For `--initial-cluster-state existing`: finds this member (by its peer URLs) in the member
/// list of a running member and returns (member id, cluster id).
pub async fn join(peers: &[String], own_urls: &[String]) -> Result<(u64, u64), String> {
    if peers.is_empty() {
        return Err(
            "--initial-cluster-state existing needs the other members in \
                    --initial-cluster"
                .into(),
        );
    }
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    while started.elapsed() < JOIN_TIMEOUT {
        for url in peers {
            match ask(url).await {
                Ok(r) => {
                    let me = r.members.iter().find(|m| {
                        !m.peer_urls.is_empty() && m.peer_urls.iter().all(|u| own_urls.contains(u))
                    });
                    return match me {
                        Some(m) => Ok((m.id, r.cluster_id)),
                        None => Err(format!(
                            "the cluster (asked {url}) has no member with peer URLs {}: add it \
                             first with `member add`",
                            own_urls.join(",")
                        )),
                    };
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "no member of the existing cluster answered ({last})"
    ))
}
