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
/// Written in every new segment. Version 2 segments may hold records of type 2 (native
/// histograms), which a version-1 reader would take for corruption: it refuses the version
/// instead. Both versions are read.
const VERSION: u16 = 2;
const VERSION_1: u16 = 1;
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

/// Creates a new segment and writes its header, durably. A segment that could not be written
/// whole (disk full) is removed again, so a later attempt can create it under the same name.
pub fn create(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    if let Err(e) = f.write_all(&header()).and_then(|_| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(&path);
        return Err(Error::io(&path, e));
    }
    sync_dir(dir)?;
    Ok(f)
}

/// Makes a directory's entries (new or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    crate::fsync::sync_dir(dir)
}

/// What replaying one segment found.
#[derive(Debug, Default)]
pub struct SegmentReplay {
    pub records: usize,
    /// Bytes cut off a torn tail of the last segment, with the reason.
    pub truncated: Option<(u64, String)>,
    /// Where a damaged segment was moved (kept whole for an operator), with the reason.
    pub moved_aside: Option<(PathBuf, String)>,
}

/// What stopped the replay of a segment before its end.
enum Damage {
    /// What a crash in the middle of a write leaves at the end of the last segment: an
    /// incomplete frame, a last frame that fails its checksum, or zeros up to the end.
    Torn(String),
    /// Anything else: bad bytes with more data after them, a bad header, a record that does
    /// not decode.
    Corrupt(String),
}

/// Reads every good record of a segment in order and hands its payload to `on_record`.
///
/// Damage is handled by what can have caused it. A torn tail of the `last` segment is a crash
/// in the middle of a write (nothing after it was ever acknowledged): it is cut off the file.
/// Any other damage is corruption: the segment is moved aside whole
/// (`<name>.corrupt-<unix ms>`) and replaced by a clean segment holding the good records
/// before the damage, so they are still replayed at the next open; later segments are
/// replayed as usual. Replay never fails on bad bytes, only on I/O errors and on a version it
/// does not know.
pub fn replay(
    path: &Path,
    last: bool,
    mut on_record: impl FnMut(&[u8]) -> Result<()>,
) -> Result<SegmentReplay> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| Error::io(path, e))?;
    let mut out = SegmentReplay::default();
    let (good, damage) = match check_header(path, &data)? {
        Some(damage) => (0, Some(damage)),
        None => {
            let mut pos = HEADER_LEN;
            let mut damage = None;
            while pos < data.len() && damage.is_none() {
                match next_frame(&data[pos..]) {
                    Ok(payload) => match on_record(payload) {
                        Ok(()) => {
                            out.records += 1;
                            pos += FRAME_LEN + payload.len();
                        }
                        Err(e) => {
                            damage = Some(Damage::Corrupt(format!("undecodable record: {e}")))
                        }
                    },
                    Err(d) => damage = Some(d),
                }
            }
            (pos, damage)
        }
    };
    match damage {
        None => {}
        Some(Damage::Torn(reason)) if last => {
            out.truncated = Some(((data.len() - good) as u64, reason));
            if good < HEADER_LEN {
                // Torn while it was being created: it holds nothing, so it becomes a clean one.
                fs::write(path, header())
                    .and_then(|_| File::open(path)?.sync_all())
                    .map_err(|e| Error::io(path, e))?;
            } else {
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                f.set_len(good as u64)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| Error::io(path, e))?;
            }
        }
        Some(Damage::Torn(reason) | Damage::Corrupt(reason)) => {
            let kept = if good < HEADER_LEN {
                header().to_vec()
            } else {
                data[..good].to_vec()
            };
            let aside = move_aside(path, &kept)?;
            out.moved_aside = Some((aside, format!("{reason} at byte {good}")));
        }
    }
    Ok(out)
}

/// `None` for a good header; the damage for a bad one. A version this reader does not know is
/// an error: the segment is fine, this binary is too old for it.
fn check_header(path: &Path, data: &[u8]) -> Result<Option<Damage>> {
    if data.len() < HEADER_LEN {
        return Ok(Some(if header().starts_with(data) {
            Damage::Torn("incomplete header".into())
        } else {
            Damage::Corrupt("header is incomplete and wrong".into())
        }));
    }
    if &data[..4] != MAGIC {
        return Ok(Some(Damage::Corrupt(
            "not a Quiver WAL segment (bad magic)".into(),
        )));
    }
    if u32::from_le_bytes(data[8..12].try_into().expect("4 bytes")) != crc32c::crc32c(&data[..8]) {
        return Ok(Some(Damage::Corrupt("header checksum mismatch".into())));
    }
    let version = u16::from_le_bytes([data[4], data[5]]);
    if version != VERSION && version != VERSION_1 {
        return Err(Error::Corrupt {
            what: format!("wal segment {}", path.display()),
            detail: format!("unsupported version {version}"),
        });
    }
    Ok(None)
}

/// The payload of the frame at the start of `rest`, or what is wrong with it.
fn next_frame(rest: &[u8]) -> std::result::Result<&[u8], Damage> {
    let damage = |torn: bool, reason: String| {
        // Space the file system allocated but a crash left unwritten reads as zeros.
        if torn || rest.iter().all(|b| *b == 0) {
            Damage::Torn(reason)
        } else {
            Damage::Corrupt(reason)
        }
    };
    if rest.len() < FRAME_LEN {
        return Err(damage(true, "torn record frame".into()));
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    // No record is empty (a payload has at least its type and two counts).
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(damage(false, format!("impossible record length {len}")));
    }
    let present = rest.len() - FRAME_LEN;
    if present < len {
        return Err(damage(
            true,
            format!("torn record: {len} bytes announced, {present} present"),
        ));
    }
    let payload = &rest[FRAME_LEN..FRAME_LEN + len];
    if crc32c::crc32c(payload) != crc {
        return Err(damage(present == len, "record checksum mismatch".into()));
    }
    Ok(payload)
}

/// Moves a damaged segment aside as `<name>.corrupt-<unix ms>`, kept whole for an operator, and
/// puts `kept` (a header and the good records) back under its name. Safe at every step against
/// a crash: the damaged file gets its second name first (a hard link, or a copy where links are
/// not supported), then the clean copy replaces the original by a rename.
fn move_aside(path: &Path, kept: &[u8]) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = path.with_file_name(format!("{name}.corrupt-{}", crate::maintenance::now_ms()));
    fs::hard_link(path, &aside)
        .or_else(|_| fs::copy(path, &aside).map(|_| ()))
        .map_err(|e| Error::io(&aside, e))?;
    let tmp = path.with_file_name(format!("{name}.tmp"));
    fs::write(&tmp, kept)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(aside)
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

    fn read_all(path: &Path, last: bool) -> (Vec<Vec<u8>>, SegmentReplay) {
        let mut got = Vec::new();
        let r = replay(path, last, |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        (got, r)
    }

    /// The files in `dir` whose names contain `.corrupt-`.
    fn moved_aside(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect()
    }

    #[test]
    fn a_torn_tail_of_the_last_segment_is_cut_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two", b"three"]);
        let full = fs::metadata(&path).unwrap().len();
        // Tear the last record in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let (got, r) = read_all(&path, true);
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        assert!(r.truncated.is_some());
        assert!(r.moved_aside.is_none());
        assert!(moved_aside(dir.path()).is_empty());
        // The cut is durable: a second replay finds a clean file.
        let (got, r) = read_all(&path, true);
        assert_eq!(got.len(), 2);
        assert!(r.truncated.is_none());
    }

    #[test]
    fn zeros_at_the_end_of_the_last_segment_are_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one"]);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&path, bytes).unwrap();
        let (got, r) = read_all(&path, true);
        assert_eq!(got, [b"one".to_vec()]);
        assert!(r.truncated.is_some() && r.moved_aside.is_none());
    }

    #[test]
    fn a_corrupt_record_moves_the_segment_aside_and_keeps_the_records_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two", b"three"]);
        let mut bytes = fs::read(&path).unwrap();
        let second = HEADER_LEN + FRAME_LEN + 3 + FRAME_LEN;
        bytes[second] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (got, r) = read_all(&path, true);
        assert_eq!(got, [b"one".to_vec()]);
        let (aside, reason) = r.moved_aside.unwrap();
        assert!(reason.contains("checksum"), "{reason}");
        // The damaged file is kept whole for an operator, not emptied or cut.
        assert_eq!(moved_aside(dir.path()), std::slice::from_ref(&aside));
        assert_eq!(fs::read(&aside).unwrap(), bytes);
        // The segment keeps its good record for the next replay, and is clean now.
        let (got, r) = read_all(&path, true);
        assert_eq!(got, [b"one".to_vec()]);
        assert!(r.truncated.is_none() && r.moved_aside.is_none());
    }

    #[test]
    fn a_torn_tail_of_an_earlier_segment_is_moved_aside_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two"]);
        let full = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 1)
            .unwrap();
        let torn = fs::read(&path).unwrap();
        let (got, r) = read_all(&path, false);
        assert_eq!(got, [b"one".to_vec()]);
        let (aside, _) = r.moved_aside.unwrap();
        assert_eq!(fs::read(aside).unwrap(), torn);
    }

    #[test]
    fn a_garbage_header_moves_the_segment_aside_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        fs::write(&path, b"garbage!garbage!").unwrap();
        let (got, r) = read_all(&path, true);
        assert!(got.is_empty());
        let (aside, _) = r.moved_aside.unwrap();
        assert_eq!(fs::read(aside).unwrap(), b"garbage!garbage!");
        assert_eq!(fs::read(&path).unwrap(), header());
    }

    #[test]
    fn a_last_segment_torn_while_it_was_created_becomes_a_clean_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        fs::write(&path, &header()[..5]).unwrap();
        let (got, r) = read_all(&path, true);
        assert!(got.is_empty());
        assert!(r.truncated.is_some() && r.moved_aside.is_none());
        assert_eq!(fs::read(&path).unwrap(), header());
    }
}
