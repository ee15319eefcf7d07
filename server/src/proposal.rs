//! The payload of a Raft log entry: an 8-byte request id followed by the encoded command.
//!
//! The id lets the Raft thread find the caller waiting for an entry without decoding the
//! command; the apply thread decodes the rest.

use concord_mvcc::{Command, MvccError};

const ID_LEN: usize = 8;

/// Builds an entry payload.
pub fn encode(id: u64, command: &Command) -> Vec<u8> {
    let body = command.encode();
    let mut data = Vec::with_capacity(ID_LEN + body.len());
    data.extend_from_slice(&id.to_le_bytes());
    data.extend_from_slice(&body);
    data
}

/// The request id of a payload, or None for an entry that carries no command (such as the empty
/// entry a new leader appends).
pub fn request_id(data: &[u8]) -> Option<u64> {
    let head: [u8; ID_LEN] = data.get(..ID_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

/// The command of a payload; None for an empty entry.
pub fn command(data: &[u8]) -> Option<Result<Command, MvccError>> {
    if data.is_empty() {
        return None;
    }
    Some(match data.get(ID_LEN..) {
        Some(body) => Command::decode(body),
        None => Err(MvccError::Decode(
            "entry shorter than its request id".into(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_payloads() {
        let cmd = Command::Compact { revision: 7 };
        let data = encode(42, &cmd);
        assert_eq!(request_id(&data), Some(42));
        assert_eq!(command(&data).unwrap().unwrap(), cmd);
        assert!(command(&[]).is_none());
        assert!(request_id(&[1, 2]).is_none());
        assert!(command(&[1, 2]).unwrap().is_err());
    }
}
