//! gRPC's health service (`grpc.health.v1.Health`), which etcd registers on its client port for
//! the server as a whole (service name ""). etcd sets it SERVING once the member serves and
//! keeps it so; Concord answers SERVING while the member knows a leader and NOT_SERVING while
//! it does not, so a probe tells a member cut off from its cluster apart. Any other service
//! name is unknown: Check answers NOT_FOUND ("unknown service"), Watch sends SERVICE_UNKNOWN,
//! as grpc-go's health server does.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use concord_proto::grpc_health_v1 as pb;
use pb::health_check_response::ServingStatus;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::core::Core;

/// How often a Watch looks at the member's leadership.
const WATCH_EVERY: Duration = Duration::from_millis(100);

pub struct HealthService {
    core: Arc<Core>,
}

impl HealthService {
    pub fn new(core: Arc<Core>) -> Self {
        HealthService { core }
    }

    fn status(&self) -> ServingStatus {
        if self.core.has_leader() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }
}

fn response(status: ServingStatus) -> pb::HealthCheckResponse {
    pb::HealthCheckResponse {
        status: status as i32,
    }
}

type WatchStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::health_server::Health for HealthService {
    async fn check(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        if !request.get_ref().service.is_empty() {
            return Err(Status::not_found("unknown service"));
        }
        Ok(Response::new(response(self.status())))
    }

    async fn watch(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let known = request.get_ref().service.is_empty();
        let (tx, rx) = mpsc::channel(4);
        let core = self.core.clone();
        tokio::spawn(async move {
            if !known {
                // Sent once; the stream stays open, as grpc-go's does, until the client goes.
                if tx
                    .send(Ok(response(ServingStatus::ServiceUnknown)))
                    .await
                    .is_ok()
                {
                    tx.closed().await;
                }
                return;
            }
            let service = HealthService { core };
            let mut last = None;
            let mut tick = tokio::time::interval(WATCH_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = tx.closed() => return,
                }
                let now = service.status();
                if last != Some(now) {
                    last = Some(now);
                    if tx.send(Ok(response(now))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
