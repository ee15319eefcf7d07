//! Concord's write-ahead log for the Raft log.
//!
//! **Files.** A directory of segments named `<seq:016x>-<first_index:016x>.wal`: `seq` counts
//! up from 0 with no gaps, `first_index` is the first Raft index the segment may hold. A
//! segment is created as `.tmp`, preallocated to [`WalOptions::segment_size`], given its first
//! records, fsynced, renamed and the directory fsynced; a new one starts when an append would
//! take the active segment past that size. Appends write zeros a little ahead of themselves in
//! the reserved space, so their fdatasync has only data to write.
//!
//! **Records.** `[len u32 LE][crc u32 LE][type u8][payload]`, `len` = 1 + payload length, `crc`
//! = crc32 of type and payload; a zero header (the preallocated zeros) ends a segment's data.
//! Every segment starts with a *Marker* (index and term of the entry just before the segment,
//! and the conf state then); then come *Entry* and *HardState* records, and a rotated segment
//! repeats the current hard state right after its marker. Payloads have fixed little-endian
//! layouts (see `codec`). [`Wal::append`] writes one Raft `Ready` (entries and hard state) with
//! one write and one fdatasync. An entry whose index is not past the last one replaces the log
//! from that index on, on disk as on replay.
//!
//! **Recovery.** Segments are replayed in sequence order. In the *last* segment, a record cut
//! short or failing its checksum (or a zero header with bytes after it) with no valid record
//! anywhere after it is a torn write: it is logged, zeroed, reported in
//! [`Recovered::truncated_tail`], and appends continue from there. Anything else refuses to
//! open with [`WalError::Corrupt`] naming the file and byte offset: a bad record in an earlier
//! segment or followed by a valid record, an impossible length, an unknown type, a malformed
//! payload, a segment that does not start with a marker, a missing segment, an entry or marker
//! that does not continue the log. Segments left in front of the log by a compaction that a
//! crash interrupted are deleted.
//!
//! The directory is locked (`flock`) while a [`Wal`] is open; a second open gets
//! [`WalError::Locked`].

mod codec;
pub mod crash;
mod error;
mod record;
mod replay;
mod scan;
mod segment;
mod terms;
mod wal;

pub use error::WalError;
pub use wal::{Marker, Recovered, Wal, WalOptions};

#[cfg(test)]
mod tests;
