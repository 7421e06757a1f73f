//! The node's files as its documentation describes them, read and damaged byte by byte.
//!
//! - `<data_dir>/log/<first offset, 20 digits>.seg`: a 16-byte header (8-byte magic, then
//!   the u64 node-wide offset of the segment's first record), then records framed as
//!   `[u32 LE payload length][u32 LE CRC32C of payload][payload]`.
//! - `<data_dir>/snapshots/<domain>.<cursor, 20 digits>.snap`.
//!
//! Tests parse the framing themselves, so a test that cuts "the last record" or flips a byte
//! "inside a record that is not the last" knows exactly which bytes it touched.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a segment header: magic and first offset.
pub const HEADER_BYTES: u64 = 16;
/// Bytes of a record frame before its payload: length and CRC32C.
pub const FRAME_BYTES: u64 = 8;

/// One record as framed in a segment file.
#[derive(Debug, Clone)]
pub struct Record {
    /// Byte offset of the frame (its length field) in the segment file.
    pub start: u64,
    /// The CRC32C the frame declares.
    pub crc: u32,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Record {
    /// The byte offset just past this record.
    pub fn end(&self) -> u64 {
        self.start + FRAME_BYTES + self.payload.len() as u64
    }

    /// Whether the declared CRC32C matches the payload.
    pub fn crc_ok(&self) -> bool {
        crc32c(&self.payload) == self.crc
    }

    /// Whether the payload contains `needle` (an event id, say: ids are stored as text).
    pub fn contains(&self, needle: &str) -> bool {
        let needle = needle.as_bytes();
        !needle.is_empty() && self.payload.windows(needle.len()).any(|w| w == needle)
    }
}

/// One segment file, parsed.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// Its file name, such as `00000000000000000001.seg`.
    pub name: String,
    /// The first offset its name declares.
    pub named_offset: u64,
    /// The 8-byte magic of its header.
    pub magic: [u8; 8],
    /// The first offset its header declares (u64 LE).
    pub header_offset: u64,
    /// Every whole record, in file order.
    pub records: Vec<Record>,
    /// The file's length.
    pub len: u64,
    /// Bytes after the last whole record (a torn tail, or zeros).
    pub trailing: u64,
}

/// `<data_dir>/log`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// `<data_dir>/snapshots`.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// The segment files of a data directory, in name (= offset) order.
pub fn segment_paths(data_dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(log_dir(data_dir))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "seg"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

/// Parses one segment file by the documented framing. A frame whose payload runs past the
/// end of the file, or a zero length, ends the records; what is left is `trailing`.
pub fn read_segment(path: &Path) -> Segment {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.trim_end_matches(".seg");
    assert!(
        stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()),
        "expected a segment named by a 20-digit offset, saw {name:?}"
    );
    let named_offset: u64 = stem.parse().expect("20 digits fit a u64");
    assert!(
        bytes.len() as u64 >= HEADER_BYTES,
        "expected {name} to hold at least the 16-byte header, it has {} bytes",
        bytes.len()
    );
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[..8]);
    let header_offset = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let mut records = Vec::new();
    let mut at = HEADER_BYTES as usize;
    while at + FRAME_BYTES as usize <= bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let payload_start = at + FRAME_BYTES as usize;
        if length == 0 || payload_start + length > bytes.len() {
            break;
        }
        records.push(Record {
            start: at as u64,
            crc,
            payload: bytes[payload_start..payload_start + length].to_vec(),
        });
        at = payload_start + length;
    }
    Segment {
        path: path.to_path_buf(),
        name,
        named_offset,
        magic,
        header_offset,
        records,
        len: bytes.len() as u64,
        trailing: (bytes.len() - at) as u64,
    }
}

/// Every segment of a data directory, parsed, in offset order.
pub fn read_log(data_dir: &Path) -> Vec<Segment> {
    segment_paths(data_dir)
        .iter()
        .map(|path| read_segment(path))
        .collect()
}

/// Asserts the documented layout over a whole log: the first segment is named after
/// offset 1, each segment's name and header hold its first node-wide offset, which follows
/// on from the records before it (one offset per record), every segment has the same
/// non-zero magic, every CRC32C matches, and nothing but zeros follows the last record of a
/// segment. Returns the number of records.
pub fn assert_layout(data_dir: &Path) -> u64 {
    let log = read_log(data_dir);
    let Some(first) = log.first() else {
        return 0;
    };
    assert_eq!(
        first.named_offset, 1,
        "expected the first segment to be named after offset 1, saw {}",
        first.name
    );
    let mut next_offset = 1;
    for segment in &log {
        assert_eq!(
            (segment.named_offset, segment.header_offset),
            (next_offset, next_offset),
            "expected {} (name, header) to start at node-wide offset {next_offset}, the one \
             after the records before it",
            segment.name
        );
        assert_eq!(
            segment.magic, first.magic,
            "expected {} to start with the same magic as {}",
            segment.name, first.name
        );
        assert_ne!(segment.magic, [0; 8], "expected a non-zero magic");
        for record in &segment.records {
            assert!(
                record.crc_ok(),
                "expected the CRC32C of the record at byte {} of {} to match its payload",
                record.start,
                segment.name
            );
        }
        if segment.trailing > 0 {
            let bytes = std::fs::read(&segment.path).expect("read segment");
            let end = segment.len - segment.trailing;
            assert!(
                bytes[end as usize..].iter().all(|&b| b == 0),
                "expected nothing but zeros after the last record of {} (byte {end})",
                segment.name
            );
        }
        next_offset += segment.records.len() as u64;
    }
    next_offset - 1
}

/// The last record of the last segment, with its segment.
pub fn last_record(data_dir: &Path) -> (Segment, Record) {
    let segments = read_log(data_dir);
    let last = segments.last().expect("at least one segment").clone();
    let record = last
        .records
        .last()
        .unwrap_or_else(|| panic!("expected records in the last segment {}", last.name))
        .clone();
    (last, record)
}

/// The one record whose payload contains `needle`: its segment and the record. Fails if
/// there is none or more than one.
pub fn find_record(data_dir: &Path, needle: &str) -> (Segment, Record) {
    let mut found = Vec::new();
    for segment in read_log(data_dir) {
        for record in &segment.records {
            if record.contains(needle) {
                found.push((segment.clone(), record.clone()));
            }
        }
    }
    assert_eq!(
        found.len(),
        1,
        "expected exactly one log record containing {needle:?}, found {}",
        found.len()
    );
    found.remove(0)
}

/// A snapshot file, by its name `<domain>.<cursor, 20 digits>.snap`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotFile {
    /// The domain it is a snapshot of.
    pub domain: String,
    /// The log position it covers.
    pub cursor: u64,
    /// The file.
    pub path: PathBuf,
}

/// Every `.snap` file, ordered by domain then cursor. Fails on a `.snap` whose name does not
/// follow the documented pattern.
pub fn snapshot_files(data_dir: &Path) -> Vec<SnapshotFile> {
    let Ok(entries) = std::fs::read_dir(snapshot_dir(data_dir)) else {
        return Vec::new();
    };
    let mut files: Vec<SnapshotFile> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "snap"))
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name.trim_end_matches(".snap");
            let (domain, cursor) = stem.rsplit_once('.').unwrap_or((stem, ""));
            assert!(
                cursor.len() == 20 && cursor.bytes().all(|b| b.is_ascii_digit()),
                "expected snapshot files named <domain>.<20-digit cursor>.snap, saw {name:?}"
            );
            SnapshotFile {
                domain: domain.to_owned(),
                cursor: cursor.parse().expect("20 digits fit a u64"),
                path,
            }
        })
        .collect();
    files.sort();
    files
}

/// The snapshot files of one domain, oldest first.
pub fn snapshots_of(data_dir: &Path, domain: &str) -> Vec<SnapshotFile> {
    snapshot_files(data_dir)
        .into_iter()
        .filter(|file| file.domain == domain)
        .collect()
}

/// XORs the byte at `offset` of `path` with 0xFF.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read file to damage");
    let index = usize::try_from(offset).expect("offset fits usize");
    assert!(
        index < bytes.len(),
        "offset {offset} past {}",
        path.display()
    );
    bytes[index] ^= 0xFF;
    write_at(path, offset, &bytes[index..=index]);
}

/// Overwrites bytes of `path` at `offset` (in place: no rename, same inode).
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open file to damage");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("sync");
}

/// Cuts `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open file to truncate");
    file.set_len(len).expect("truncate");
    file.sync_all().expect("sync");
}

/// CRC-32C (Castagnoli, reflected, as the `crc32c` crate computes it), bit by bit: slow and
/// obviously right, which is what a test wants.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// Whether `text` contains `number` as a whole decimal number (not inside a longer one).
pub fn contains_number(text: &str, number: u64) -> bool {
    let needle = number.to_string();
    text.match_indices(&needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720, and every CRC catalogue).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn contains_number_needs_whole_numbers() {
        assert!(contains_number("offset=1234 in x", 1234));
        assert!(contains_number("at byte 1234", 1234));
        assert!(!contains_number("offset=12345", 1234));
        assert!(!contains_number("offset=91234", 1234));
    }
}
