//! WAL segment files: a versioned header, then framed records with a CRC each.
//!
//! ```text
//! header:  b"QWAL" | u16 version (1) | u16 reserved (0) | u32 crc32c of the first 8 bytes
//! record:  u32 payload length | u32 crc32c of the payload | payload (see `record.rs`)
//! ```
//! A segment is named by its sequence number (`00000042.wal`); replay reads them in order.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"QWAL";
const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 12;
const FRAME_LEN: usize = 8;
/// No record is larger than this; a length field above it is corruption.
pub const MAX_RECORD_LEN: usize = 1 << 30;

/// The header every segment starts with.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&h[..8]);
    h[8..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends one framed record to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.wal"))
}

/// The sequence numbers of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Creates a new segment and writes its header, durably.
pub fn create(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.write_all(&header()).map_err(|e| Error::io(&path, e))?;
    f.sync_all().map_err(|e| Error::io(&path, e))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Makes a directory's entries (new or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// What replaying one segment found.
#[derive(Debug, Default)]
pub struct SegmentReplay {
    pub records: usize,
    /// Bytes cut off a torn or corrupt tail, with the reason.
    pub truncated: Option<(u64, String)>,
}

/// Reads every good record of a segment in order and hands its payload to `on_record`.
/// A torn or corrupt tail is cut off the file (so later appends never follow garbage): only the
/// bad record and what follows it are lost.
pub fn replay(
    path: &Path,
    mut on_record: impl FnMut(&[u8]) -> Result<()>,
) -> Result<SegmentReplay> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| Error::io(path, e))?;
    let mut out = SegmentReplay::default();
    let bad_header = if data.len() < HEADER_LEN {
        Some("header is incomplete".to_string())
    } else if &data[..4] != MAGIC {
        Some("not a Quiver WAL segment (bad magic)".to_string())
    } else if u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"))
        != crc32c::crc32c(&data[..8])
    {
        Some("header checksum mismatch".to_string())
    } else if u16::from_le_bytes([data[4], data[5]]) != VERSION {
        return Err(Error::Corrupt {
            what: format!("wal segment {}", path.display()),
            detail: format!(
                "unsupported version {}",
                u16::from_le_bytes([data[4], data[5]])
            ),
        });
    } else {
        None
    };
    if let Some(reason) = bad_header {
        // Nothing in this segment can be trusted; rewrite it as an empty segment.
        out.truncated = Some((data.len() as u64, reason));
        fs::write(path, header()).map_err(|e| Error::io(path, e))?;
        return Ok(out);
    }
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        let rest = &data[pos..];
        let problem = if rest.len() < FRAME_LEN {
            Some("torn record frame".to_string())
        } else {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
            if len > MAX_RECORD_LEN || rest.len() - FRAME_LEN < len {
                Some(format!(
                    "torn record: {len} bytes announced, {} present",
                    rest.len() - FRAME_LEN
                ))
            } else {
                let payload = &rest[FRAME_LEN..FRAME_LEN + len];
                if crc32c::crc32c(payload) != crc {
                    Some("record checksum mismatch".to_string())
                } else {
                    match on_record(payload) {
                        Ok(()) => {
                            out.records += 1;
                            pos += FRAME_LEN + len;
                            None
                        }
                        Err(e) => Some(format!("undecodable record: {e}")),
                    }
                }
            }
        };
        if let Some(reason) = problem {
            out.truncated = Some(((data.len() - pos) as u64, reason));
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            f.set_len(pos as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io(path, e))?;
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_segment(dir: &Path, payloads: &[&[u8]]) -> PathBuf {
        let path = segment_path(dir, 1);
        let mut bytes = header().to_vec();
        for p in payloads {
            frame(p, &mut bytes);
        }
        fs::write(&path, bytes).unwrap();
        path
    }

    fn read_all(path: &Path) -> (Vec<Vec<u8>>, SegmentReplay) {
        let mut got = Vec::new();
        let r = replay(path, |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        (got, r)
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two", b"three"]);
        let full = fs::metadata(&path).unwrap().len();
        // Tear the last record in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let (got, r) = read_all(&path);
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        assert!(r.truncated.is_some());
        // The cut is durable: a second replay finds a clean file.
        let (got, r) = read_all(&path);
        assert_eq!(got.len(), 2);
        assert!(r.truncated.is_none());
    }

    #[test]
    fn corrupt_record_is_cut_with_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two", b"three"]);
        let mut bytes = fs::read(&path).unwrap();
        let second = HEADER_LEN + FRAME_LEN + 3 + FRAME_LEN;
        bytes[second] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (got, r) = read_all(&path);
        assert_eq!(got, [b"one".to_vec()]);
        assert!(r.truncated.unwrap().1.contains("checksum"));
    }

    #[test]
    fn garbage_header_empties_the_segment_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        fs::write(&path, b"garbage!garbage!").unwrap();
        let (got, r) = read_all(&path);
        assert!(got.is_empty());
        assert!(r.truncated.is_some());
    }
}
