//! Concord's public wire types, generated at build time (see `build.rs`) from the `.proto` files
//! in this crate with prost and tonic: etcd's v3 API exactly as etcd 3.5 defines it —
//! [`etcdserverpb`] (the `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance` and `Auth` services),
//! [`mvccpb`] and [`authpb`] — plus etcd's lock ([`v3lockpb`]) and election ([`v3electionpb`])
//! services, with etcd's package, service, message and field names and field numbers, so etcd
//! clients (etcdctl, clientv3, …) talk to Concord unchanged; and gRPC's health service
//! ([`grpc_health_v1`]), which etcd serves too.
//!
//! Every module has both the tonic server (`*_server`) and client (`*_client`) stubs.
//!
//! Concord's member-to-member protocol is not here: it is internal to the server, which
//! generates it from `server/proto/peer.proto`.
//!
//! [`errors`] is the one table of etcd's error codes and texts; [`sha256`] is the checksum that
//! ends a snapshot stream.

// Generated code: no lints, no docs.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod errors;
pub mod sha256;

/// etcd's MVCC types: `KeyValue` and `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's auth types: `User`, `Role`, `Permission`.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's v3 API: the `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance` and `Auth` services.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// etcd's `Lock` service.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's `Election` service.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// gRPC's health checking service (`grpc.health.v1.Health`), which etcd registers on its
/// client port.
pub mod grpc_health_v1 {
    tonic::include_proto!("grpc.health.v1");
}

#[cfg(test)]
mod tests {
    use super::etcdserverpb as pb;
    use prost::Message;
    use tonic::server::NamedService;

    #[test]
    fn field_numbers_match_etcd() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            lease: 5,
            prev_kv: true,
            ..Default::default()
        };
        // key: field 1 bytes (tag 0x0a); lease: field 3 varint (0x18); prev_kv: field 4 varint (0x20).
        assert_eq!(put.encode_to_vec(), vec![0x0a, 1, b'k', 0x18, 5, 0x20, 1]);

        let cmp = pb::Compare {
            range_end: b"z".to_vec(),
            target_union: Some(pb::compare::TargetUnion::Lease(2)),
            ..Default::default()
        };
        // lease: field 8 varint (0x40); range_end: field 64 bytes (tag 64<<3|2 = 514 = 0x82 0x04).
        assert_eq!(cmp.encode_to_vec(), vec![0x40, 2, 0x82, 0x04, 1, b'z']);

        let watch = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    watch_id: 3,
                    fragment: true,
                    ..Default::default()
                },
            )),
        };
        // create_request: field 1 (0x0a, length 4) holding watch_id field 7 (0x38) and
        // fragment field 8 (0x40).
        assert_eq!(watch.encode_to_vec(), vec![0x0a, 4, 0x38, 3, 0x40, 1]);

        let events = pb::WatchResponse {
            events: vec![super::mvccpb::Event::default()],
            ..Default::default()
        };
        // events: field 11 (tag 11<<3|2 = 0x5a), an empty Event.
        assert_eq!(events.encode_to_vec(), vec![0x5a, 0]);

        let lock = super::v3lockpb::LockRequest {
            name: b"n".to_vec(),
            lease: 7,
        };
        assert_eq!(lock.encode_to_vec(), vec![0x0a, 1, b'n', 0x10, 7]);
    }

    #[test]
    fn enum_values_match_etcd() {
        assert_eq!(pb::compare::CompareTarget::Lease as i32, 4);
        assert_eq!(pb::compare::CompareResult::NotEqual as i32, 3);
        assert_eq!(pb::range_request::SortTarget::Value as i32, 4);
        assert_eq!(pb::AlarmType::Corrupt as i32, 2);
        assert_eq!(pb::watch_create_request::FilterType::Nodelete as i32, 1);
        assert_eq!(super::mvccpb::event::EventType::Delete as i32, 1);
        assert_eq!(super::authpb::permission::Type::Readwrite as i32, 2);
    }

    #[test]
    fn service_names_match_etcd() {
        use super::{v3electionpb as election, v3lockpb as lock};
        assert_eq!(pb::kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(pb::watch_server::SERVICE_NAME, "etcdserverpb.Watch");
        assert_eq!(pb::lease_server::SERVICE_NAME, "etcdserverpb.Lease");
        assert_eq!(pb::cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
        assert_eq!(
            pb::maintenance_server::SERVICE_NAME,
            "etcdserverpb.Maintenance"
        );
        assert_eq!(pb::auth_server::SERVICE_NAME, "etcdserverpb.Auth");
        assert_eq!(lock::lock_server::SERVICE_NAME, "v3lockpb.Lock");
        assert_eq!(
            election::election_server::SERVICE_NAME,
            "v3electionpb.Election"
        );
        assert_eq!(
            super::grpc_health_v1::health_server::SERVICE_NAME,
            "grpc.health.v1.Health"
        );
        assert_eq!(
            super::grpc_health_v1::health_check_response::ServingStatus::ServiceUnknown as i32,
            3
        );

        // The server wrapper routes under the same name (and default stubs make an empty impl
        // valid: every method answers Unimplemented).
        struct S;
        impl pb::kv_server::Kv for S {}
        assert_eq!(
            <pb::kv_server::KvServer<S> as NamedService>::NAME,
            "etcdserverpb.KV"
        );
    }
}
