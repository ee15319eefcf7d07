//! Builders for handmade histories. Times are given in milliseconds.

use crate::{
    check, Bytes, Call, EventKind, History, KeyRange, MicroOp, Op, PrevKv, Report, Ret, WatchEnd,
    WatchEvent, WatchResponse, WatchStream,
};

pub const MS: u64 = 1_000_000;

/// A history under construction.
#[derive(Default)]
pub struct H {
    pub h: History,
    next: u64,
}

impl H {
    pub fn new() -> Self {
        H::default()
    }

    pub fn op(&mut self, client: u64, t0: u64, t1: Option<u64>, call: Call, ret: Ret) -> u64 {
        self.next += 1;
        let id = self.next;
        self.h
            .ops
            .push(Op::new(id, client, t0 * MS, t1.map(|t| t * MS), call, ret));
        id
    }

    pub fn put(&mut self, c: u64, t0: u64, t1: u64, k: &str, v: &str, rev: u64) -> u64 {
        let call = Call::Put {
            key: k.into(),
            value: v.into(),
            lease: None,
        };
        self.op(c, t0, Some(t1), call, Ret::Put { revision: rev })
    }

    pub fn put_lease(&mut self, c: u64, t0: u64, t1: u64, k: &str, v: &str, lease: i64) -> u64 {
        let call = Call::Put {
            key: k.into(),
            value: v.into(),
            lease: Some(lease),
        };
        self.op(c, t0, Some(t1), call, Ret::Put { revision: 0 })
    }

    pub fn put_unknown(&mut self, c: u64, t0: u64, k: &str, v: &str) -> u64 {
        let call = Call::Put {
            key: k.into(),
            value: v.into(),
            lease: None,
        };
        self.op(c, t0, None, call, Ret::Unknown)
    }

    pub fn get(&mut self, c: u64, t0: u64, t1: u64, k: &str, v: Option<&str>) -> u64 {
        self.read(c, t0, t1, k, v, false)
    }

    pub fn get_serializable(&mut self, c: u64, t0: u64, t1: u64, k: &str, v: Option<&str>) -> u64 {
        self.read(c, t0, t1, k, v, true)
    }

    fn read(
        &mut self,
        c: u64,
        t0: u64,
        t1: u64,
        k: &str,
        v: Option<&str>,
        serializable: bool,
    ) -> u64 {
        let call = Call::Get {
            key: k.into(),
            serializable,
        };
        self.op(
            c,
            t0,
            Some(t1),
            call,
            Ret::Get {
                value: v.map(Bytes::from),
                revision: 0,
            },
        )
    }

    pub fn del(&mut self, c: u64, t0: u64, t1: u64, k: &str, deleted: u64, rev: u64) -> u64 {
        let call = Call::Delete { key: k.into() };
        self.op(
            c,
            t0,
            Some(t1),
            call,
            Ret::Delete {
                deleted,
                revision: rev,
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn cas(
        &mut self,
        c: u64,
        t0: u64,
        t1: u64,
        k: &str,
        expected: Option<&str>,
        new: &str,
        ok: bool,
    ) -> u64 {
        let call = Call::Cas {
            key: k.into(),
            expected: expected.map(Bytes::from),
            new: new.into(),
        };
        self.op(
            c,
            t0,
            Some(t1),
            call,
            Ret::Cas {
                succeeded: ok,
                revision: 0,
            },
        )
    }

    pub fn txn(&mut self, c: u64, t0: u64, t1: u64, micro: Vec<MicroOp>, rev: u64) -> u64 {
        self.op(
            c,
            t0,
            Some(t1),
            Call::Txn { micro_ops: micro },
            Ret::Txn { revision: rev },
        )
    }

    pub fn txn_failed(&mut self, c: u64, t0: u64, t1: u64, micro: Vec<MicroOp>) -> u64 {
        let ret = Ret::Fail {
            error: "aborted".into(),
        };
        self.op(c, t0, Some(t1), Call::Txn { micro_ops: micro }, ret)
    }

    pub fn txn_unknown(&mut self, c: u64, t0: u64, micro: Vec<MicroOp>) -> u64 {
        self.op(c, t0, None, Call::Txn { micro_ops: micro }, Ret::Unknown)
    }

    pub fn check(&self) -> Report {
        let r = check(&self.h);
        // Every report must render.
        let _ = r.to_string();
        r
    }
}

pub fn app(k: &str, e: u64) -> MicroOp {
    MicroOp::Append {
        key: k.into(),
        element: e,
    }
}

pub fn rd(k: &str, l: &[u64]) -> MicroOp {
    MicroOp::Read {
        key: k.into(),
        result: Some(l.to_vec()),
    }
}

pub fn put_ev(k: &str, v: &str, rev: u64) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Put,
        key: k.into(),
        value: v.into(),
        mod_revision: rev,
        create_revision: None,
        version: None,
        prev_kv: None,
    }
}

pub fn put_ev_full(k: &str, v: &str, rev: u64, create: u64, version: u64) -> WatchEvent {
    WatchEvent {
        create_revision: Some(create),
        version: Some(version),
        ..put_ev(k, v, rev)
    }
}

pub fn del_ev(k: &str, rev: u64) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        key: k.into(),
        value: Bytes::default(),
        mod_revision: rev,
        create_revision: None,
        version: None,
        prev_kv: None,
    }
}

pub fn with_prev(mut e: WatchEvent, v: &str, rev: u64) -> WatchEvent {
    e.prev_kv = Some(PrevKv {
        value: v.into(),
        mod_revision: rev,
    });
    e
}

/// A stream with one response per inner vector.
pub fn stream(
    id: u64,
    range: KeyRange,
    start: u64,
    responses: Vec<Vec<WatchEvent>>,
) -> WatchStream {
    let mut s = WatchStream::new(id, range, start);
    for (i, events) in responses.into_iter().enumerate() {
        let header = events.iter().map(|e| e.mod_revision).max().unwrap_or(0);
        s.responses.push(WatchResponse {
            received_ns: i as u64,
            header_revision: header,
            progress_notify: false,
            events,
        });
    }
    s.end = WatchEnd::Open;
    s
}

/// Adds a progress notification at `rev`.
pub fn progress(mut s: WatchStream, rev: u64) -> WatchStream {
    s.responses.push(WatchResponse {
        received_ns: 0,
        header_revision: rev,
        progress_notify: true,
        events: Vec::new(),
    });
    s
}
