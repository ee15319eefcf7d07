//! Wire types of Concord: etcd's v3 API (`etcdserverpb`, `mvccpb`, `authpb`) exactly as etcd 3.5
//! defines it, and Concord's own peer protocol (`concordpeerpb`). Generated at build time.

#![allow(clippy::all, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod concordpeerpb {
    tonic::include_proto!("concordpeerpb");
}

#[cfg(test)]
mod tests {
    use super::etcdserverpb as pb;
    use prost::Message;

    #[test]
    fn field_numbers_match_etcd() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            lease: 5,
            prev_kv: true,
            ..Default::default()
        };
        // key: field 1 bytes; lease: field 3 varint; prev_kv: field 4 varint.
        assert_eq!(put.encode_to_vec(), vec![0x0a, 1, b'k', 0x18, 5, 0x20, 1]);
        let cmp = pb::Compare {
            range_end: b"z".to_vec(),
            target_union: Some(pb::compare::TargetUnion::Lease(2)),
            ..Default::default()
        };
        // lease: field 8 varint; range_end: field 64 bytes (tag 64<<3|2 = 514 = 0x82 0x04).
        assert_eq!(cmp.encode_to_vec(), vec![0x40, 2, 0x82, 0x04, 1, b'z']);
    }

    #[test]
    fn service_names_match_etcd() {
        use tonic::server::NamedService;
        struct S;
        impl pb::kv_server::Kv for S {}
        assert_eq!(
            <pb::kv_server::KvServer<S> as NamedService>::NAME,
            "etcdserverpb.KV"
        );
    }
}
