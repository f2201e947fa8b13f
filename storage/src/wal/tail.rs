//! Reading the WAL as it is written, for senders that forward what the server stores (remote
//! write): a position (segment, byte offset) that follows the writer from segment to segment.
//!
//! The tail reads only whole frames whose checksum holds; a frame still being written is left
//! for the next read. When the segment it is in has been deleted (its data flushed to a block
//! and the WAL truncated), it moves on to the oldest segment left and counts the segments it
//! skipped: a sender that falls further behind than the WAL keeps loses what was truncated,
//! and knows it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::WalRecord;
use super::segment::{self, HEADER_LEN, MAX_RECORD_LEN};
use crate::error::{Error, Result};

const FRAME_LEN: usize = 8;

/// A reading position in a WAL directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalTail {
    dir: PathBuf,
    seq: u64,
    offset: u64,
    /// Segments passed over without reading them whole (deleted, or damaged).
    pub skipped_segments: u64,
}

impl WalTail {
    /// A position at the current end of the WAL: what is written from now on is read.
    pub fn at_end(dir: &Path) -> Result<Self> {
        let seqs = segment::list_segments(dir)?;
        let Some(&seq) = seqs.last() else {
            return Ok(WalTail {
                dir: dir.to_path_buf(),
                seq: 1,
                offset: HEADER_LEN as u64,
                skipped_segments: 0,
            });
        };
        let path = segment::segment_path(dir, seq);
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        Ok(WalTail {
            dir: dir.to_path_buf(),
            seq,
            offset: len.max(HEADER_LEN as u64),
            skipped_segments: 0,
        })
    }

    /// The segment and byte offset read next.
    pub fn position(&self) -> (u64, u64) {
        (self.seq, self.offset)
    }

    /// The records written since the last read, in order, up to about `max_bytes` of payload
    /// (at least one record when there is one). Empty when there is nothing new.
    pub fn read(&mut self, max_bytes: usize) -> Result<Vec<WalRecord>> {
        let mut out = Vec::new();
        let mut budget = max_bytes;
        loop {
            let path = segment::segment_path(&self.dir, self.seq);
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !self.advance(false)? {
                        return Ok(out);
                    }
                    continue;
                }
                Err(e) => return Err(Error::io(&path, e)),
            };
            // A later segment means this one is complete: read it to its end, then move on.
            let later = self.later_exists()?;
            let read = self.read_segment(&mut file, &path, &mut budget, &mut out)?;
            if budget == 0 {
                return Ok(out);
            }
            match read {
                Frames::End if later => {
                    self.advance(true)?;
                }
                Frames::Damaged => {
                    // Passed over once a later segment exists (the writer may still be
                    // cutting a failed write off this one).
                    if !self.advance(false)? {
                        return Ok(out);
                    }
                }
                Frames::End | Frames::Incomplete => return Ok(out),
            }
        }
    }

    fn later_exists(&self) -> Result<bool> {
        Ok(segment::list_segments(&self.dir)?
            .last()
            .is_some_and(|&s| s > self.seq))
    }

    /// Moves to the next segment there is (`read_whole`: this one was read to its end).
    /// Answers false when there is none.
    fn advance(&mut self, read_whole: bool) -> Result<bool> {
        let seqs = segment::list_segments(&self.dir)?;
        let Some(&next) = seqs.iter().find(|&&s| s > self.seq) else {
            return Ok(false);
        };
        // Segments between (deleted under us) and this one if it was not read whole.
        self.skipped_segments += next - self.seq - 1 + u64::from(!read_whole);
        self.seq = next;
        self.offset = HEADER_LEN as u64;
        Ok(true)
    }

    fn read_segment(
        &mut self,
        file: &mut File,
        path: &Path,
        budget: &mut usize,
        out: &mut Vec<WalRecord>,
    ) -> Result<Frames> {
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len <= self.offset {
            return Ok(Frames::End);
        }
        // Read what is there (bounded, so a large segment is read in steps).
        let want = (len - self.offset).min((*budget as u64).max(1 << 20) + FRAME_LEN as u64);
        let mut data = vec![0u8; want as usize];
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| Error::io(path, e))?;
        let got = read_full(file, &mut data).map_err(|e| Error::io(path, e))?;
        data.truncate(got);
        let mut pos = 0usize;
        while pos + FRAME_LEN <= data.len() {
            let n = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
            if n == 0 || n > MAX_RECORD_LEN {
                return Ok(Frames::Damaged);
            }
            if data.len() - pos - FRAME_LEN < n {
                // A record larger than this read's window, first in it: read it whole (a frame
                // still being written reads short and waits for the next read).
                if pos == 0 && (FRAME_LEN + n) as u64 <= len - self.offset {
                    let mut whole = vec![0u8; FRAME_LEN + n];
                    file.seek(SeekFrom::Start(self.offset))
                        .map_err(|e| Error::io(path, e))?;
                    if read_full(file, &mut whole).map_err(|e| Error::io(path, e))? == whole.len() {
                        data = whole;
                        continue;
                    }
                }
                return Ok(Frames::Incomplete);
            }
            let payload = &data[pos + FRAME_LEN..pos + FRAME_LEN + n];
            if crc32c::crc32c(payload) != crc {
                return Ok(Frames::Damaged);
            }
            match WalRecord::decode(payload) {
                Ok(r) => out.push(r),
                Err(_) => return Ok(Frames::Damaged),
            }
            pos += FRAME_LEN + n;
            self.offset += (FRAME_LEN + n) as u64;
            *budget = budget.saturating_sub(n);
            if *budget == 0 {
                return Ok(Frames::Incomplete);
            }
        }
        Ok(if self.offset >= len {
            Frames::End
        } else {
            Frames::Incomplete
        })
    }
}

/// How a read of a segment ended.
enum Frames {
    /// At the end of what the segment holds now.
    End,
    /// A frame not yet whole (being written), or the budget spent.
    Incomplete,
    /// Bytes that are not a good frame: the rest of the segment is passed over.
    Damaged,
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelLimits, Labels, SeriesId};
    use crate::wal::{Wal, WalMetrics};
    use std::sync::Arc;

    fn record(id: u64, t: i64) -> WalRecord {
        WalRecord {
            new_series: vec![(
                SeriesId(id),
                Labels::try_from_pairs(vec![("__name__", "up")], &LabelLimits::default()).unwrap(),
            )],
            series_ids: vec![SeriesId(id)],
            timestamps: vec![t],
            values: vec![1.0],
        }
    }

    #[tokio::test]
    async fn the_tail_follows_the_writer_across_segments_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |_| {}).unwrap();
        wal.submit(&record(1, 1)).await.unwrap().unwrap();
        // Starts at the end: the record before is not read.
        let mut tail = WalTail::at_end(dir.path()).unwrap();
        assert!(tail.read(1 << 20).unwrap().is_empty());
        wal.submit(&record(2, 2)).await.unwrap().unwrap();
        wal.submit(&record(3, 3)).await.unwrap().unwrap();
        let got = tail.read(1 << 20).unwrap();
        assert_eq!(
            got.iter().map(|r| r.timestamps[0]).collect::<Vec<_>>(),
            [2, 3]
        );
        // A roll: the tail moves to the next segment.
        let seq = wal.roll().await.unwrap().unwrap();
        wal.submit(&record(4, 4)).await.unwrap().unwrap();
        assert_eq!(tail.read(1 << 20).unwrap()[0].timestamps, [4]);
        assert_eq!(tail.position().0, seq);
        assert_eq!(tail.skipped_segments, 0);
        // The budget: one record a read at a tiny budget, none lost.
        for t in 5..8 {
            wal.submit(&record(t as u64, t)).await.unwrap().unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            let got = tail.read(1).unwrap();
            assert_eq!(got.len(), 1);
            seen.push(got[0].timestamps[0]);
        }
        assert_eq!(seen, [5, 6, 7]);
        // Behind a truncation: the tail skips to the oldest segment left and says so.
        let behind = tail.clone();
        wal.roll().await.unwrap().unwrap();
        wal.submit(&record(8, 8)).await.unwrap().unwrap();
        let s3 = wal.roll().await.unwrap().unwrap();
        wal.submit(&record(9, 9)).await.unwrap().unwrap();
        wal.delete_before(s3).unwrap();
        let mut behind = behind;
        let got = behind.read(1 << 20).unwrap();
        // Record 8 went with its segment.
        assert_eq!(got.iter().map(|r| r.timestamps[0]).collect::<Vec<_>>(), [9]);
        // The segment it was in and the one after were deleted under it.
        assert_eq!(behind.skipped_segments, s3 - seq);
        assert_eq!(s3 - seq, 2);
    }

    #[test]
    fn a_frame_being_written_is_left_for_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment::segment_path(dir.path(), 1);
        let mut payload = Vec::new();
        record(1, 1).encode(&mut payload);
        let mut framed = Vec::new();
        segment::frame(&payload, &mut framed);
        std::fs::write(&path, segment::header()).unwrap();
        let mut tail = WalTail::at_end(dir.path()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        use std::io::Write;
        f.write_all(&framed[..framed.len() - 3]).unwrap();
        assert!(tail.read(1 << 20).unwrap().is_empty());
        f.write_all(&framed[framed.len() - 3..]).unwrap();
        assert_eq!(tail.read(1 << 20).unwrap().len(), 1);
        // Garbage after it: the segment is passed over once a later one exists.
        f.write_all(&[0xff; 20]).unwrap();
        assert!(tail.read(1 << 20).unwrap().is_empty());
        std::fs::write(segment::segment_path(dir.path(), 2), segment::header()).unwrap();
        let mut f2 = std::fs::OpenOptions::new()
            .append(true)
            .open(segment::segment_path(dir.path(), 2))
            .unwrap();
        f2.write_all(&framed).unwrap();
        assert_eq!(tail.read(1 << 20).unwrap().len(), 1);
        assert_eq!(tail.skipped_segments, 1);
    }
}
