//! Calls a follower makes to the leader for what only the leader can answer: lease renewals
//! and remaining TTLs. One lazily connected client per member, on its first peer URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::cluster::Members;
use crate::error::ServerError;
use crate::peerpb;
use crate::peerpb::peer_client::PeerClient;

pub struct LeaderCalls {
    members: watch::Receiver<Arc<Members>>,
    clients: Mutex<HashMap<u64, (String, PeerClient<Channel>)>>,
}

/// What the leader's lessor says about a lease.
pub struct LeaseTtl {
    pub ttl: i64,
    pub granted_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

/// A leader's answer to a forwarded call: "not leader" (or any other Unavailable) means ask
/// again, wherever the leader is now.
fn forwarded(s: tonic::Status) -> ServerError {
    if s.code() == tonic::Code::Unavailable {
        ServerError::NotLeader
    } else {
        ServerError::Forwarded(s.message().to_string())
    }
}

impl LeaderCalls {
    pub fn new(members: watch::Receiver<Arc<Members>>) -> LeaderCalls {
        LeaderCalls {
            members,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, id: u64) -> Result<PeerClient<Channel>, ServerError> {
        let url = self
            .members
            .borrow()
            .by_id
            .get(&id)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or(ServerError::NoLeader)?;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((u, c)) = clients.get(&id) {
            if *u == url {
                return Ok(c.clone());
            }
        }
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|_| ServerError::NoLeader)?
            .connect_timeout(Duration::from_secs(1));
        let client = PeerClient::new(endpoint.connect_lazy());
        clients.insert(id, (url, client.clone()));
        Ok(client)
    }

    pub async fn renew(&self, leader: u64, id: i64) -> Result<i64, ServerError> {
        let mut c = self.client(leader)?;
        let r = c
            .lease_renew(peerpb::LeaseRenewRequest { id })
            .await
            .map_err(forwarded)?;
        Ok(r.into_inner().ttl)
    }

    pub async fn time_to_live(
        &self,
        leader: u64,
        id: i64,
        keys: bool,
    ) -> Result<Option<LeaseTtl>, ServerError> {
        let mut c = self.client(leader)?;
        let r = c
            .lease_time_to_live(peerpb::LeaseTtlRequest { id, keys })
            .await
            .map_err(forwarded)?
            .into_inner();
        Ok(r.found.then_some(LeaseTtl {
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys: r.keys,
        }))
    }
}
