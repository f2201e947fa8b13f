//! Reading the WAL as it is written, for senders that forward what the server stores (remote
//! write): a position (segment, byte offset) that follows the writer from segment to segment.
//!
//! The tail reads no further than the writer's committed position ([`super::Committed`]):
//! records written whole, never bytes of a write still under way or one that failed and is cut
//! back. A segment behind the committed one is complete: the tail reads it to its end and moves
//! on (past damage too). It keeps the segment it reads open, so a segment deleted under it (its
//! data flushed to a block) is still read to its end; when it finds a segment gone before it
//! opened it, it moves on to the oldest one left and counts the segments it skipped: a sender
//! that falls further behind than the WAL keeps loses what was truncated, and knows it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::segment::{self, HEADER_LEN, MAX_RECORD_LEN};
use super::{Committed, WalRecord};
use crate::error::{Error, Result};

const FRAME_LEN: usize = 8;

/// A reading position in a WAL.
#[derive(Debug)]
pub struct WalTail {
    dir: PathBuf,
    committed: Committed,
    seq: u64,
    offset: u64,
    /// The open segment `seq`, once opened.
    file: Option<File>,
    /// Segments passed over without reading them whole (deleted, or damaged).
    pub skipped_segments: u64,
}

impl Clone for WalTail {
    fn clone(&self) -> Self {
        WalTail {
            dir: self.dir.clone(),
            committed: self.committed.clone(),
            seq: self.seq,
            offset: self.offset,
            file: None,
            skipped_segments: self.skipped_segments,
        }
    }
}

/// How a read of a segment ended.
enum Frames {
    /// At the end of what may be read of the segment now.
    End,
    /// The budget is spent.
    Budget,
    /// Bytes that are not a good frame (or a frame cut short), before the end.
    Damaged,
}

impl WalTail {
    /// A position at the WAL's committed end: what is written from now on is read.
    pub fn at_end(dir: &Path, committed: Committed) -> Self {
        let (seq, offset) = *committed.lock();
        WalTail {
            dir: dir.to_path_buf(),
            committed,
            seq,
            offset,
            file: None,
            skipped_segments: 0,
        }
    }

    /// The segment and byte offset read next.
    pub fn position(&self) -> (u64, u64) {
        (self.seq, self.offset)
    }

    /// The records written since the last read, in order, up to about `max_bytes` of payload
    /// (at least one record when there is one). Empty when there is nothing new.
    pub fn read(&mut self, max_bytes: usize) -> Result<Vec<WalRecord>> {
        let mut out = Vec::new();
        let mut budget = max_bytes.max(1);
        loop {
            let (cseq, csize) = *self.committed.lock();
            let complete = self.seq < cseq;
            if self.file.is_none() {
                let path = segment::segment_path(&self.dir, self.seq);
                match File::open(&path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !complete || !self.advance(false)? {
                            return Ok(out);
                        }
                        continue;
                    }
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
            // The current segment is read up to the committed length, an earlier one whole.
            let limit = if complete { u64::MAX } else { csize };
            match self.read_segment(limit, &mut budget, &mut out)? {
                Frames::Budget => return Ok(out),
                Frames::End if complete => {
                    self.advance(true)?;
                }
                Frames::Damaged if complete => {
                    self.advance(false)?;
                }
                // Damage below the committed length of the current segment: corruption; the
                // tail moves on when the writer does.
                Frames::End | Frames::Damaged => return Ok(out),
            }
        }
    }

    /// Moves to the next segment there is (`read_whole`: this one was read to its end).
    /// Answers false when there is none.
    fn advance(&mut self, read_whole: bool) -> Result<bool> {
        let seqs = segment::list_segments(&self.dir)?;
        let next = match seqs.iter().find(|&&s| s > self.seq) {
            Some(&s) => s,
            // Every later segment is gone too: the committed one is next (it exists by now,
            // or is gone as well and the next read finds out).
            None => {
                let (cseq, _) = *self.committed.lock();
                if cseq <= self.seq {
                    return Ok(false);
                }
                cseq
            }
        };
        self.skipped_segments += next - self.seq - 1 + u64::from(!read_whole);
        self.seq = next;
        self.offset = HEADER_LEN as u64;
        self.file = None;
        Ok(true)
    }

    fn read_segment(
        &mut self,
        limit: u64,
        budget: &mut usize,
        out: &mut Vec<WalRecord>,
    ) -> Result<Frames> {
        let path = segment::segment_path(&self.dir, self.seq);
        let file = self.file.as_mut().expect("opened");
        let len = file
            .metadata()
            .map_err(|e| Error::io(&path, e))?
            .len()
            .min(limit);
        while self.offset < len {
            let avail = len - self.offset;
            if avail < FRAME_LEN as u64 {
                return Ok(if limit == u64::MAX {
                    Frames::Damaged
                } else {
                    Frames::End
                });
            }
            // Read a window of frames (bounded, so a large segment is read in steps).
            let want = avail.min((*budget as u64).max(1 << 20) + FRAME_LEN as u64);
            let mut data = vec![0u8; want as usize];
            file.seek(SeekFrom::Start(self.offset))
                .map_err(|e| Error::io(&path, e))?;
            let got = read_full(file, &mut data).map_err(|e| Error::io(&path, e))?;
            data.truncate(got);
            let mut pos = 0usize;
            while pos + FRAME_LEN <= data.len() {
                let n =
                    u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
                let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
                if n == 0 || n > MAX_RECORD_LEN || (FRAME_LEN + n) as u64 > avail - pos as u64 {
                    // Announces more than is there (committed, or in a complete segment).
                    return Ok(Frames::Damaged);
                }
                if data.len() - pos - FRAME_LEN < n {
                    if pos > 0 {
                        break; // the next window starts with it
                    }
                    // A record larger than the window: read it whole.
                    let mut whole = vec![0u8; FRAME_LEN + n];
                    file.seek(SeekFrom::Start(self.offset))
                        .map_err(|e| Error::io(&path, e))?;
                    if read_full(file, &mut whole).map_err(|e| Error::io(&path, e))? < whole.len() {
                        return Ok(Frames::Damaged);
                    }
                    data = whole;
                    continue;
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
                    return Ok(Frames::Budget);
                }
            }
            if pos == 0 && data.len() < FRAME_LEN {
                return Ok(Frames::Damaged);
            }
        }
        Ok(Frames::End)
    }
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
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_tail_follows_the_writer_across_segments_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |_| {}).unwrap();
        wal.submit(&record(1, 1)).await.unwrap().unwrap();
        // Starts at the end: the record before is not read.
        let mut tail = WalTail::at_end(dir.path(), wal.committed());
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
    fn nothing_past_the_committed_position_is_read_and_damage_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment::segment_path(dir.path(), 1);
        let mut payload = Vec::new();
        record(1, 1).encode(&mut payload);
        let mut framed = Vec::new();
        segment::frame(&payload, &mut framed);
        std::fs::write(&path, segment::header()).unwrap();
        let committed: Committed =
            std::sync::Arc::new(parking_lot::Mutex::new((1, HEADER_LEN as u64)));
        let mut tail = WalTail::at_end(dir.path(), committed.clone());
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // Written but not committed (a write under way, or one about to be cut back): not read.
        f.write_all(&framed).unwrap();
        assert!(tail.read(1 << 20).unwrap().is_empty());
        *committed.lock() = (1, HEADER_LEN as u64 + framed.len() as u64);
        assert_eq!(tail.read(1 << 20).unwrap().len(), 1);
        // A torn frame left in a segment the writer has left: passed over, and counted.
        f.write_all(&framed[..framed.len() - 3]).unwrap();
        std::fs::write(segment::segment_path(dir.path(), 2), segment::header()).unwrap();
        let mut f2 = std::fs::OpenOptions::new()
            .append(true)
            .open(segment::segment_path(dir.path(), 2))
            .unwrap();
        f2.write_all(&framed).unwrap();
        *committed.lock() = (2, HEADER_LEN as u64 + framed.len() as u64);
        assert_eq!(tail.read(1 << 20).unwrap().len(), 1);
        assert_eq!(tail.skipped_segments, 1);
        assert_eq!(
            tail.position(),
            (2, HEADER_LEN as u64 + framed.len() as u64)
        );
    }

    #[tokio::test]
    async fn a_segment_deleted_while_open_is_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |_| {}).unwrap();
        let mut tail = WalTail::at_end(dir.path(), wal.committed());
        wal.submit(&record(1, 1)).await.unwrap().unwrap();
        assert_eq!(tail.read(1 << 20).unwrap().len(), 1);
        // Appended, then the segment rolled and deleted before the tail's next read.
        wal.submit(&record(2, 2)).await.unwrap().unwrap();
        let next = wal.roll().await.unwrap().unwrap();
        wal.delete_before(next).unwrap();
        let got = tail.read(1 << 20).unwrap();
        assert_eq!(got.iter().map(|r| r.timestamps[0]).collect::<Vec<_>>(), [2]);
        assert_eq!(tail.skipped_segments, 0);
    }

    #[tokio::test]
    async fn a_write_that_failed_and_was_cut_back_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |_| {}).unwrap();
        let mut tail = WalTail::at_end(dir.path(), wal.committed());
        for fault in [crate::wal::Fault::FailedSync, crate::wal::Fault::ShortWrite] {
            wal.inject(fault);
            assert!(wal.submit(&record(1, 1)).await.unwrap().is_err());
            assert!(tail.read(1 << 20).unwrap().is_empty(), "{fault:?}");
        }
        wal.submit(&record(2, 2)).await.unwrap().unwrap();
        let got = tail.read(1 << 20).unwrap();
        assert_eq!(got.iter().map(|r| r.timestamps[0]).collect::<Vec<_>>(), [2]);
    }
}
