//! The Maintenance and Cluster calls: a member's status and the cluster's member list.

use concord_proto::etcdserverpb as pb;
use pb::cluster_client::ClusterClient;
use pb::maintenance_client::MaintenanceClient;

use crate::client::{Client, Retry};
use crate::{Error, MemberListResponse, StatusResponse};

impl Client {
    /// Maintenance `Status` of the member in use. A read: retried on the other endpoints.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// let s = client.status().await?;
    /// println!("member {:x}: version {}, leader {:x}, raft index {}",
    ///     s.header.member_id, s.version, s.leader, s.raft_index);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        let r = self
            .call("status", Retry::Idempotent, |ch| {
                let mut m =
                    MaintenanceClient::new(ch).max_decoding_message_size(self.max_response());
                async move { m.status(pb::StatusRequest {}).await }
            })
            .await?;
        Ok(r.into())
    }

    /// The members of the cluster. A read: retried on the other endpoints.
    ///
    /// ```no_run
    /// # async fn f(client: concord_client::Client) -> Result<(), concord_client::Error> {
    /// for m in client.member_list().await?.members {
    ///     println!("{:x} {} {:?}", m.id, m.name, m.client_urls);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn member_list(&self) -> Result<MemberListResponse, Error> {
        let r = self
            .call("member_list", Retry::Idempotent, |ch| {
                let mut c = ClusterClient::new(ch).max_decoding_message_size(self.max_response());
                async move {
                    c.member_list(pb::MemberListRequest {
                        linearizable: false,
                    })
                    .await
                }
            })
            .await?;
        Ok(r.into())
    }
}
