//! Request options, built into etcd wire requests.

use concord_proto::etcdserverpb as pb;
pub use pb::range_request::{SortOrder, SortTarget};

/// The end of the range covering every key that starts with `prefix`: the prefix with its last
/// byte below 0xff incremented; `"\0"` (every key) when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// How a key argument extends to a range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum RangeSpec {
    #[default]
    Key,
    Prefix,
    FromKey,
    End(Vec<u8>),
}

impl RangeSpec {
    fn range_end(&self, key: &[u8]) -> Vec<u8> {
        match self {
            RangeSpec::Key => Vec::new(),
            RangeSpec::Prefix => prefix_end(key),
            RangeSpec::FromKey => vec![0],
            RangeSpec::End(e) => e.clone(),
        }
    }
}

/// The builder methods that turn the key argument into a range, shared by the option types
/// that have a `range: RangeSpec` field.
macro_rules! range_builders {
    () => {
        /// Every key starting with the key.
        pub fn prefix(mut self) -> Self {
            self.range = RangeSpec::Prefix;
            self
        }
        /// Every key from the key on.
        pub fn from_key(mut self) -> Self {
            self.range = RangeSpec::FromKey;
            self
        }
        /// Keys in `[key, end)`.
        pub fn range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
            self.range = RangeSpec::End(end.into());
            self
        }
    };
}

/// Options of a get (etcd Range).
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    range: RangeSpec,
    req: pb::RangeRequest,
}

impl GetOptions {
    pub fn new() -> Self {
        Self::default()
    }
    range_builders!();
    pub fn limit(mut self, n: i64) -> Self {
        self.req.limit = n;
        self
    }
    /// Read at this revision instead of the current one.
    pub fn revision(mut self, rev: i64) -> Self {
        self.req.revision = rev;
        self
    }
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.req.sort_target = target as i32;
        self.req.sort_order = order as i32;
        self
    }
    pub fn keys_only(mut self) -> Self {
        self.req.keys_only = true;
        self
    }
    pub fn count_only(mut self) -> Self {
        self.req.count_only = true;
        self
    }
    /// Served by the member locally, without a Raft round (may be stale).
    pub fn serializable(mut self) -> Self {
        self.req.serializable = true;
        self
    }
    pub fn min_mod_revision(mut self, rev: i64) -> Self {
        self.req.min_mod_revision = rev;
        self
    }
    pub fn max_mod_revision(mut self, rev: i64) -> Self {
        self.req.max_mod_revision = rev;
        self
    }
    pub fn min_create_revision(mut self, rev: i64) -> Self {
        self.req.min_create_revision = rev;
        self
    }
    pub fn max_create_revision(mut self, rev: i64) -> Self {
        self.req.max_create_revision = rev;
        self
    }
    pub(crate) fn build(&self, key: Vec<u8>) -> pb::RangeRequest {
        pb::RangeRequest {
            range_end: self.range.range_end(&key),
            key,
            ..self.req.clone()
        }
    }
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    pub lease: i64,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

impl PutOptions {
    pub(crate) fn build(&self, key: Vec<u8>, value: Vec<u8>) -> pb::PutRequest {
        pb::PutRequest {
            key,
            value,
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

/// Options of a delete (etcd DeleteRange).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    range: RangeSpec,
    prev_kv: bool,
}

impl DeleteOptions {
    pub fn new() -> Self {
        Self::default()
    }
    range_builders!();
    /// Return the deleted key-values.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
    pub(crate) fn build(&self, key: Vec<u8>) -> pb::DeleteRangeRequest {
        pb::DeleteRangeRequest {
            range_end: self.range.range_end(&key),
            key,
            prev_kv: self.prev_kv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn options_build_requests() {
        let r = GetOptions::new()
            .prefix()
            .limit(3)
            .revision(9)
            .keys_only()
            .build(b"k/".to_vec());
        assert_eq!(
            (
                r.key.as_slice(),
                r.range_end.as_slice(),
                r.limit,
                r.revision,
                r.keys_only
            ),
            (&b"k/"[..], &b"k0"[..], 3, 9, true)
        );
        let r = GetOptions::new()
            .from_key()
            .sort(SortTarget::Mod, SortOrder::Descend)
            .build(b"a".to_vec());
        assert_eq!((r.range_end, r.sort_target, r.sort_order), (vec![0], 3, 2));
        let d = DeleteOptions::new()
            .range_end("z")
            .prev_kv()
            .build(b"a".to_vec());
        assert_eq!((d.range_end, d.prev_kv), (b"z".to_vec(), true));
    }
}
