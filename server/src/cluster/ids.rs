//! Member and cluster identities: u64s, shown in hex as etcd shows them.

/// Store meta key holding this member's id (big-endian u64).
pub const MEMBER_ID_KEY: &str = "member_id";
/// Store meta key holding the cluster's id (big-endian u64).
pub const CLUSTER_ID_KEY: &str = "cluster_id";

/// FNV-1a, 64 bit: small, stable across Rust releases and platforms.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts so that ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A member's id, derived from its peer URLs and the cluster token as etcd does, so every member
/// of an initial cluster computes the same ids for all of them. Never 0 (Raft reserves it).
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let joined = urls.join(",");
    nonzero(fnv1a(&[joined.as_bytes(), cluster_token.as_bytes()]))
}

/// The cluster's id, derived from its initial members' ids.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    nonzero(fnv1a(&[&bytes]))
}

/// The first value of a per-process counter whose values must not repeat those of an earlier
/// run of the same member (request ids, ReadIndex contexts): the wall clock in milliseconds,
/// shifted left 16 bits, as etcd's id generator does. A later run starts above everything an
/// earlier one could have used unless the earlier one averaged over 65,536 ids per millisecond,
/// or the clock went back between the two runs.
pub fn incarnation_counter_start() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (ms << 16).max(1)
}

fn nonzero(id: u64) -> u64 {
    if id == 0 {
        1
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_depend_on_the_token() {
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        assert_eq!(member_id(&urls, "t"), member_id(&urls, "t"));
        assert_ne!(member_id(&urls, "t"), member_id(&urls, "u"));
        let a = member_id(&urls, "t");
        assert_ne!(cluster_id(&[a]), 0);
        assert_eq!(cluster_id(&[1, 2]), cluster_id(&[2, 1]));
    }

    #[test]
    fn a_later_incarnation_starts_above_an_earlier_one() {
        let first = incarnation_counter_start();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let second = incarnation_counter_start();
        // The first run could have used 3 ms worth of ids (at 65,536 per ms) without overlap.
        assert!(second >= first + 3 * 65_536, "{first} {second}");
    }
}
