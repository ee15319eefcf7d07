//! What a member does with bad input on its peer port: batches from a non-member, messages that
//! claim another sender than their batch, too many messages, oversized or undecodable batches
//! are refused with an error, and the member keeps serving (issue 11 §1.10).

use concord_proto::concordpeerpb as peerpb;
use concord_proto::etcdserverpb as pb;
use concord_tests::{rt_multi, Concord};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tonic::Code;

fn heartbeat(from: u64, to: u64) -> Vec<u8> {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = 1;
    m.write_to_bytes().unwrap()
}

#[test]
fn bad_peer_batches_are_refused_and_the_member_keeps_serving() {
    let c = Concord::start();
    let peer = format!("http://127.0.0.1:{}", c.peer_port);
    let endpoint = c.endpoint();
    rt_multi().block_on(async move {
        let mut maint = pb::maintenance_client::MaintenanceClient::connect(endpoint.clone())
            .await
            .unwrap();
        let header = maint
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap();
        let (me, cluster) = (header.member_id, header.cluster_id);
        let mut p = peerpb::peer_client::PeerClient::connect(peer)
            .await
            .unwrap()
            .max_encoding_message_size(usize::MAX);
        let batch = |from: u64, messages: Vec<Vec<u8>>| peerpb::RaftBatch {
            cluster_id: cluster,
            from,
            to: me,
            messages,
        };

        let stranger = me ^ 0x5a5a;
        let s = p
            .send(batch(stranger, vec![heartbeat(stranger, me)]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        assert!(s.message().contains("is not a member"), "{}", s.message());

        let s = p
            .send(batch(me, vec![heartbeat(stranger, me)]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

        let s = p
            .send(batch(me, vec![b"\xff\xff\xff not raft".to_vec()]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

        let s = p
            .send(batch(me, vec![heartbeat(me, me); 513]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

        // Far beyond any batch a member sends (the default --max-request-bytes is 1.5 MiB).
        let s = p
            .send(batch(me, vec![vec![0u8; 32 << 20]]))
            .await
            .unwrap_err();
        assert!(
            matches!(s.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{s:?}"
        );

        let s = p
            .send(peerpb::RaftBatch {
                cluster_id: cluster ^ 1,
                ..batch(me, vec![heartbeat(me, me)])
            })
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    });
    // Still serving.
    c.etcdctl_ok(&["put", "after", "bad-peers"]);
    assert_eq!(
        c.etcdctl_ok(&["get", "after", "--print-value-only"]).trim(),
        "bad-peers"
    );
    let log = c.log();
    assert!(log.contains("refused a peer message"), "{log}");
}
