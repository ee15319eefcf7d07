//! Request options, built into etcd wire requests.

use concord_proto::etcdserverpb as pb;
pub use pb::range_request::{SortOrder, SortTarget};

/// The end of the range that covers every key starting with `prefix`: the prefix with its last
/// byte below 0xff incremented (trailing 0xff bytes dropped), or `"\0"` — which etcd reads as "to
/// the end of the keyspace" — when there is no such byte (empty or all-0xff prefix).
///
/// ```
/// use concord_client::prefix_end;
/// assert_eq!(prefix_end(b"app/"), b"app0");
/// assert_eq!(prefix_end(b"a\xff"), b"b");
/// assert_eq!(prefix_end(b"\xff\xff"), b"\0");
/// assert_eq!(prefix_end(b""), b"\0");
/// ```
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

/// How the key argument of a get or delete extends to a range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum RangeSpec {
    /// Just the key.
    #[default]
    Key,
    /// Every key starting with the key.
    Prefix,
    /// Every key greater than or equal to the key.
    FromKey,
    /// `[key, end)`.
    End(Vec<u8>),
}

impl RangeSpec {
    /// The wire `(key, range_end)`. As etcd's Go client does, an empty key with `prefix` or
    /// `from_key` becomes `"\0"` (the server refuses an empty key), so both mean "every key".
    fn apply(&self, key: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        match self {
            RangeSpec::Key => (key, Vec::new()),
            RangeSpec::Prefix | RangeSpec::FromKey if key.is_empty() => (vec![0], vec![0]),
            RangeSpec::Prefix => {
                let end = prefix_end(&key);
                (key, end)
            }
            RangeSpec::FromKey => (key, vec![0]),
            RangeSpec::End(end) => (key, end.clone()),
        }
    }
}

/// The builder methods that turn the key argument into a range, shared by [`GetOptions`] and
/// [`DeleteOptions`] (both have a `range: RangeSpec` field).
macro_rules! range_builders {
    () => {
        /// Every key starting with the given key (`range_end` = [`prefix_end`] of the key). With
        /// an empty key: every key.
        pub fn prefix(mut self) -> Self {
            self.range = RangeSpec::Prefix;
            self
        }

        /// Every key greater than or equal to the given key (`range_end` = `"\0"`). With an
        /// empty key: every key.
        pub fn from_key(mut self) -> Self {
            self.range = RangeSpec::FromKey;
            self
        }

        /// Keys in `[key, end)`. An `end` of `"\0"` means "to the end of the keyspace".
        pub fn range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
            self.range = RangeSpec::End(end.into());
            self
        }
    };
}

/// Options of [`Client::get_with`](crate::Client::get_with) (etcd `Range`), as a builder.
///
/// ```
/// use concord_client::{GetOptions, SortOrder, SortTarget};
///
/// let opts = GetOptions::new()
///     .prefix()
///     .sort(SortTarget::Mod, SortOrder::Descend)
///     .limit(10)
///     .keys_only();
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GetOptions {
    range: RangeSpec,
    req: pb::RangeRequest,
}

impl GetOptions {
    /// Just the key, latest revision, linearizable: same as [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    range_builders!();

    /// At most `n` keys (0: no limit). `more` in the response tells whether there were more.
    pub fn limit(mut self, n: i64) -> Self {
        self.req.limit = n;
        self
    }

    /// Read the store as it was at this revision (0: the latest). Fails with
    /// [`Error::Compacted`](crate::Error::Compacted) if that revision was compacted away.
    pub fn revision(mut self, rev: i64) -> Self {
        self.req.revision = rev;
        self
    }

    /// Sort the keys. etcd sorts by key, ascending, when no order is given.
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.req.sort_target = target as i32;
        self.req.sort_order = order as i32;
        self
    }

    /// Return keys without values.
    pub fn keys_only(mut self) -> Self {
        self.req.keys_only = true;
        self
    }

    /// Return only the number of keys (`count`), no key-values.
    pub fn count_only(mut self) -> Self {
        self.req.count_only = true;
        self
    }

    /// Let the member answer from its own state without a Raft round trip: faster, works without
    /// a leader, but may be stale.
    pub fn serializable(mut self) -> Self {
        self.req.serializable = true;
        self
    }

    /// Only keys last modified at or after this revision.
    pub fn min_mod_revision(mut self, rev: i64) -> Self {
        self.req.min_mod_revision = rev;
        self
    }

    /// Only keys last modified at or before this revision.
    pub fn max_mod_revision(mut self, rev: i64) -> Self {
        self.req.max_mod_revision = rev;
        self
    }

    /// Only keys created at or after this revision.
    pub fn min_create_revision(mut self, rev: i64) -> Self {
        self.req.min_create_revision = rev;
        self
    }

    /// Only keys created at or before this revision.
    pub fn max_create_revision(mut self, rev: i64) -> Self {
        self.req.max_create_revision = rev;
        self
    }

    /// The wire request for `key` with these options.
    pub fn to_request(&self, key: impl Into<Vec<u8>>) -> pb::RangeRequest {
        let (key, range_end) = self.range.apply(key.into());
        pb::RangeRequest {
            key,
            range_end,
            ..self.req.clone()
        }
    }
}

/// Options of [`Client::put_with`](crate::Client::put_with). Build with the fields or with the
/// methods:
///
/// ```
/// use concord_client::PutOptions;
///
/// let a = PutOptions { lease: 7, prev_kv: true, ..Default::default() };
/// let b = PutOptions::new().lease(7).prev_kv();
/// assert_eq!(a, b);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Attach the key to this lease (0: none); the key is deleted when the lease expires.
    pub lease: i64,
    /// Return the key-value as it was before the put.
    pub prev_kv: bool,
    /// Keep the current value (only the lease changes). Fails if the key does not exist.
    pub ignore_value: bool,
    /// Keep the current lease (only the value changes). Fails if the key does not exist.
    pub ignore_lease: bool,
}

impl PutOptions {
    /// No lease, no previous key-value.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attach the key to this lease.
    pub fn lease(mut self, id: i64) -> Self {
        self.lease = id;
        self
    }

    /// Return the key-value as it was before the put.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Keep the current value.
    pub fn ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }

    /// Keep the current lease.
    pub fn ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// The wire request for `key` = `value` with these options.
    pub fn to_request(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> pb::PutRequest {
        pb::PutRequest {
            key: key.into(),
            value: value.into(),
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

/// Options of [`Client::delete_with`](crate::Client::delete_with) (etcd `DeleteRange`), as a
/// builder.
///
/// ```
/// use concord_client::DeleteOptions;
///
/// let opts = DeleteOptions::new().prefix().prev_kv();
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    range: RangeSpec,
    prev_kv: bool,
}

impl DeleteOptions {
    /// Just the key: same as [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    range_builders!();

    /// Return the deleted key-values.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// The wire request for `key` with these options.
    pub fn to_request(&self, key: impl Into<Vec<u8>>) -> pb::DeleteRangeRequest {
        let (key, range_end) = self.range.apply(key.into());
        pb::DeleteRangeRequest {
            key,
            range_end,
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
        assert_eq!(prefix_end(b"k/"), b"k0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xfe\xff"), b"a\xff");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn plain_get_is_one_key() {
        let r = GetOptions::new().to_request("k");
        assert_eq!(
            r,
            pb::RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn get_options_build_requests() {
        let r = GetOptions::new()
            .prefix()
            .limit(3)
            .revision(9)
            .keys_only()
            .to_request("k/");
        assert_eq!(
            r,
            pb::RangeRequest {
                key: b"k/".to_vec(),
                range_end: b"k0".to_vec(),
                limit: 3,
                revision: 9,
                keys_only: true,
                ..Default::default()
            }
        );

        let r = GetOptions::new()
            .from_key()
            .sort(SortTarget::Mod, SortOrder::Descend)
            .count_only()
            .serializable()
            .min_mod_revision(1)
            .max_mod_revision(2)
            .min_create_revision(3)
            .max_create_revision(4)
            .to_request("a");
        assert_eq!(
            r,
            pb::RangeRequest {
                key: b"a".to_vec(),
                range_end: vec![0],
                sort_target: SortTarget::Mod as i32,
                sort_order: SortOrder::Descend as i32,
                count_only: true,
                serializable: true,
                min_mod_revision: 1,
                max_mod_revision: 2,
                min_create_revision: 3,
                max_create_revision: 4,
                ..Default::default()
            }
        );
        assert_eq!((r.sort_target, r.sort_order), (3, 2));

        let r = GetOptions::new().range_end("c").to_request("a");
        assert_eq!((r.key, r.range_end), (b"a".to_vec(), b"c".to_vec()));

        // The last range builder wins.
        let r = GetOptions::new().prefix().range_end("z").to_request("a");
        assert_eq!(r.range_end, b"z".to_vec());
    }

    #[test]
    fn whole_keyspace_rules() {
        // An empty key with prefix or from_key means every key: key "\0", range_end "\0".
        for opts in [GetOptions::new().prefix(), GetOptions::new().from_key()] {
            let r = opts.to_request("");
            assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        }
        let d = DeleteOptions::new().prefix().to_request(Vec::new());
        assert_eq!((d.key, d.range_end), (vec![0], vec![0]));
        // An all-0xff prefix has no successor: to the end of the keyspace.
        let r = GetOptions::new().prefix().to_request(vec![0xff, 0xff]);
        assert_eq!((r.key, r.range_end), (vec![0xff, 0xff], vec![0]));
        // A plain get of the empty key stays as is (the server answers EmptyKey).
        let r = GetOptions::new().to_request("");
        assert_eq!((r.key, r.range_end), (vec![], vec![]));
    }

    #[test]
    fn put_options_build_requests() {
        let r = PutOptions::new()
            .lease(5)
            .prev_kv()
            .ignore_value()
            .ignore_lease()
            .to_request("k", "v");
        assert_eq!(
            r,
            pb::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                lease: 5,
                prev_kv: true,
                ignore_value: true,
                ignore_lease: true,
            }
        );
        let r = PutOptions::default().to_request(vec![1u8], vec![2u8]);
        assert_eq!(
            r,
            pb::PutRequest {
                key: vec![1],
                value: vec![2],
                ..Default::default()
            }
        );
    }

    #[test]
    fn delete_options_build_requests() {
        let d = DeleteOptions::new()
            .range_end("z")
            .prev_kv()
            .to_request("a");
        assert_eq!(
            d,
            pb::DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                prev_kv: true,
            }
        );
        let d = DeleteOptions::new().prefix().to_request("jobs/");
        assert_eq!((d.range_end, d.prev_kv), (b"jobs0".to_vec(), false));
        let d = DeleteOptions::new().from_key().to_request("m");
        assert_eq!(d.range_end, vec![0]);
        let d = DeleteOptions::new().to_request("k");
        assert_eq!((d.key, d.range_end), (b"k".to_vec(), vec![]));
    }
}
