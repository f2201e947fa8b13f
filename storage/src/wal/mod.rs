//! The write-ahead log: every append is framed, checksummed and fsynced before it is
//! acknowledged. One writer thread does group commit: it takes every append waiting in its
//! queue, writes them together and fsyncs once, then acknowledges them all.
//!
//! Segments roll when a block cut begins (the older ones are deleted once the block is in the
//! manifest) and when a segment grows past [`MAX_SEGMENT_BYTES`].

mod record;
pub mod segment;
pub mod tail;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

pub use record::WalRecord;

use crate::error::{Error, Result};

/// A segment larger than this is closed and a new one started.
pub const MAX_SEGMENT_BYTES: u64 = 256 << 20;

/// Counters the server exposes on `/metrics`.
#[derive(Debug, Default)]
pub struct WalMetrics {
    pub fsyncs: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub truncations: AtomicU64,
    /// Damaged segments moved aside at replay.
    pub corrupt_segments: AtomicU64,
    /// Writes or fsyncs that failed (each refused the appends it carried).
    pub write_failures: AtomicU64,
}

#[derive(Debug)]
enum Msg {
    /// A framed record's payload; whether its ack waits for the fsync.
    Append(Vec<u8>, oneshot::Sender<Result<()>>, bool),
    /// Start a new segment; answers its sequence number.
    Roll(oneshot::Sender<Result<u64>>),
    Close(oneshot::Sender<()>),
}

/// The write-ahead log.
/// How far the WAL is written and good: the segment and its length up to its last record
/// written whole (a failed write is cut back before it is published). Readers that follow the
/// WAL ([`tail::WalTail`]) read no further.
pub type Committed = Arc<Mutex<(u64, u64)>>;

#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    committed: Committed,
    tx: mpsc::Sender<Msg>,
    writer: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<WalMetrics>,
    #[cfg(test)]
    faults: Faults,
}

/// A failure the writer fakes at its next commit (tests only).
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// Half the bytes are written, then the disk is full.
    ShortWrite,
    /// Everything is written, then the fsync fails.
    FailedSync,
}

#[cfg(test)]
type Faults = Arc<Mutex<std::collections::VecDeque<Fault>>>;

impl Wal {
    /// Replays every segment in `dir` in order, handing each record to `on_record`, then opens a
    /// new segment for appends. A torn tail of the last segment is cut; a damaged segment is
    /// moved aside with its good records kept (see [`segment::replay`]).
    pub fn open(
        dir: &Path,
        metrics: Arc<WalMetrics>,
        mut on_record: impl FnMut(WalRecord),
    ) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let seqs = segment::list_segments(dir)?;
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment::segment_path(dir, seq);
            let replay = segment::replay(&path, i + 1 == seqs.len(), |payload| {
                on_record(WalRecord::decode(payload)?);
                Ok(())
            })?;
            if let Some((bytes, reason)) = replay.truncated {
                metrics.truncations.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    segment = %path.display(), kept_records = replay.records, cut_bytes = bytes,
                    "cut a torn WAL tail (left by a crash in the middle of a write): {reason}"
                );
            }
            if let Some((aside, reason)) = replay.moved_aside {
                metrics.corrupt_segments.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    segment = %path.display(), kept_records = replay.records,
                    moved_to = %aside.display(),
                    "a WAL segment is damaged: {reason}; the records before the damage are kept \
                     and replayed, the whole file is kept at moved_to for inspection (delete it \
                     once it is no longer needed)"
                );
            }
        }
        let next = seqs.last().map_or(1, |s| s + 1);
        let file = segment::create(dir, next)?;
        let (tx, rx) = mpsc::channel();
        #[cfg(test)]
        let faults = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let committed: Committed = Arc::new(Mutex::new((next, segment::HEADER_LEN as u64)));
        let writer = Writer {
            committed: committed.clone(),
            dir: dir.to_path_buf(),
            seq: next,
            file,
            size: segment::HEADER_LEN as u64,
            unsynced: false,
            broken: false,
            metrics: metrics.clone(),
            #[cfg(test)]
            faults: faults.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("quiver-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io(dir, e))?;
        Ok(Wal {
            committed,
            dir: dir.to_path_buf(),
            tx,
            writer: Mutex::new(Some(handle)),
            metrics,
            #[cfg(test)]
            faults,
        })
    }

    /// Makes the next commits fail, one fault each, in order (tests only).
    #[cfg(test)]
    pub(crate) fn inject(&self, fault: Fault) {
        self.faults.lock().push_back(fault);
    }

    /// Queues a record; the returned receiver resolves once it is durable. Sending is ordered:
    /// records queued earlier are written earlier.
    pub fn submit(&self, record: &WalRecord) -> oneshot::Receiver<Result<()>> {
        self.send(record, true)
    }

    /// Queues a record whose receiver resolves once it is written, without an fsync of its own:
    /// for data the server derives itself (rule results). It is synced with the next durable
    /// record, a segment roll or the close, whichever comes first.
    pub fn submit_unsynced(&self, record: &WalRecord) -> oneshot::Receiver<Result<()>> {
        self.send(record, false)
    }

    fn send(&self, record: &WalRecord, durable: bool) -> oneshot::Receiver<Result<()>> {
        let mut payload = Vec::new();
        record.encode(&mut payload);
        let (ack, rx) = oneshot::channel();
        // Replay takes a longer frame for damage: such a record must never be acknowledged.
        if payload.len() > segment::MAX_RECORD_LEN {
            let _ = ack.send(Err(Error::LimitExceeded(format!(
                "one write would make a WAL record of {} bytes, more than {}",
                payload.len(),
                segment::MAX_RECORD_LEN
            ))));
            return rx;
        }
        if let Err(mpsc::SendError(Msg::Append(_, ack, _))) =
            self.tx.send(Msg::Append(payload, ack, durable))
        {
            let _ = ack.send(Err(Error::ShuttingDown));
        }
        rx
    }

    /// Starts a new segment and answers its sequence number: everything submitted before this
    /// call is in older segments.
    pub fn roll(&self) -> oneshot::Receiver<Result<u64>> {
        let (ack, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Roll(ack))) = self.tx.send(Msg::Roll(ack)) {
            let _ = ack.send(Err(Error::ShuttingDown));
        }
        rx
    }

    /// The position up to which the WAL is written whole.
    pub fn committed(&self) -> Committed {
        self.committed.clone()
    }

    /// The folder of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the segments older than `seq` (their contents are in blocks now).
    pub fn delete_before(&self, seq: u64) -> Result<()> {
        for old in segment::list_segments(&self.dir)?
            .into_iter()
            .filter(|s| *s < seq)
        {
            let path = segment::segment_path(&self.dir, old);
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        segment::sync_dir(&self.dir)
    }

    /// Total bytes of the segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        segment::list_segments(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| fs::metadata(segment::segment_path(&self.dir, s)).ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn metrics(&self) -> &WalMetrics {
        &self.metrics
    }

    /// Writes out what is queued, then stops the writer. Later submits fail with `ShuttingDown`.
    pub async fn close(&self) {
        let (ack, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).is_ok() {
            let _ = rx.await;
        }
        // The writer has answered its last message and is returning: the join is immediate.
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let (ack, _rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Close(ack));
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    /// Published after every good write and every new segment.
    committed: Committed,
    dir: PathBuf,
    seq: u64,
    file: File,
    /// The segment's length up to its last good record: where a failed write is cut back to.
    size: u64,
    /// Written and not yet synced (records submitted without an fsync of their own).
    unsynced: bool,
    /// A failed write could not be cut back: the next commit starts a new segment first.
    broken: bool,
    metrics: Arc<WalMetrics>,
    #[cfg(test)]
    faults: Faults,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut buf = Vec::new();
        let mut acks: Vec<oneshot::Sender<Result<()>>> = Vec::new();
        let mut durable = false;
        while let Ok(first) = rx.recv() {
            let mut queue = vec![first];
            while queue.len() < 4096 {
                match rx.try_recv() {
                    Ok(m) => queue.push(m),
                    Err(_) => break,
                }
            }
            for msg in queue {
                match msg {
                    Msg::Append(payload, ack, d) => {
                        segment::frame(&payload, &mut buf);
                        acks.push(ack);
                        durable |= d;
                    }
                    Msg::Roll(ack) => {
                        self.commit(&mut buf, &mut acks, true);
                        durable = false;
                        let _ = ack.send(self.roll());
                    }
                    Msg::Close(ack) => {
                        self.commit(&mut buf, &mut acks, true);
                        let _ = ack.send(());
                        return;
                    }
                }
            }
            self.commit(&mut buf, &mut acks, durable);
            durable = false;
            if self.size > MAX_SEGMENT_BYTES
                && let Err(e) = self.roll()
            {
                tracing::error!("could not start a new WAL segment: {e}");
            }
        }
    }

    /// Writes the queued frames, fsyncs once (when a record asks for it, or `sync` does and
    /// something is unsynced), and answers every waiting append. A failure refuses them all
    /// ([`Error::WalUnavailable`]) and leaves the segment as it was before (see
    /// [`Writer::cut_back`]), so records acknowledged later are never behind a torn frame.
    fn commit(
        &mut self,
        buf: &mut Vec<u8>,
        acks: &mut Vec<oneshot::Sender<Result<()>>>,
        sync: bool,
    ) {
        if acks.is_empty() && !(sync && self.unsynced) {
            return;
        }
        let result = self.write_out(buf, sync);
        let path = segment::segment_path(&self.dir, self.seq);
        match &result {
            Ok(()) => {
                self.unsynced = !sync;
                self.size += buf.len() as u64;
                *self.committed.lock() = (self.seq, self.size);
                self.metrics
                    .records
                    .fetch_add(acks.len() as u64, Ordering::Relaxed);
                self.metrics
                    .bytes
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.metrics.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(segment = %path.display(), "WAL write failed, {} appends refused: {e}", acks.len());
                self.cut_back();
            }
        }
        for ack in acks.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(Error::WalUnavailable {
                    path: path.display().to_string(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                }),
            };
            let _ = ack.send(r);
        }
        buf.clear();
    }

    /// Appends `buf` to the segment (starting a new one first if the last failure left this one
    /// broken) and syncs it if asked.
    fn write_out(&mut self, buf: &[u8], sync: bool) -> std::io::Result<()> {
        if self.broken {
            self.start_segment()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        #[cfg(test)]
        let fault = self.faults.lock().pop_front();
        #[cfg(test)]
        if let Some(Fault::ShortWrite) = fault {
            self.file.write_all(&buf[..buf.len() / 2])?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected: no space left on device",
            ));
        }
        self.file.write_all(buf)?;
        if sync {
            #[cfg(test)]
            if let Some(Fault::FailedSync) = fault {
                return Err(std::io::Error::other("injected: fsync failed"));
            }
            self.file.sync_data()?;
            self.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// After a failed write or fsync: cuts the segment back to its last good record (durably,
    /// so a crash cannot bring back the refused bytes either). If that fails too, the segment
    /// is left as it is and later records go to a new one: replay then finds the damage in an
    /// earlier segment, keeps what precedes it and goes on.
    fn cut_back(&mut self) {
        let cut = self
            .file
            .set_len(self.size)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = cut {
            tracing::error!(
                segment = %segment::segment_path(&self.dir, self.seq).display(),
                "could not cut a failed WAL write back ({e}); later records go to a new segment"
            );
            self.broken = true;
            if let Err(e) = self.start_segment() {
                tracing::error!("could not start a new WAL segment: {e}");
            }
        }
    }

    fn roll(&mut self) -> Result<u64> {
        if self.unsynced && !self.broken {
            self.file
                .sync_data()
                .map_err(|e| Error::io(segment::segment_path(&self.dir, self.seq), e))?;
            self.unsynced = false;
        }
        self.start_segment()?;
        Ok(self.seq)
    }

    /// Moves on to a new segment.
    fn start_segment(&mut self) -> Result<()> {
        let next = self.seq + 1;
        self.file = segment::create(&self.dir, next)?;
        self.seq = next;
        self.size = segment::HEADER_LEN as u64;
        self.unsynced = false;
        self.broken = false;
        *self.committed.lock() = (self.seq, self.size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelLimits, Labels, SeriesId};

    fn record(ts: i64) -> WalRecord {
        let labels = Labels::try_from_pairs([("__name__", "up")], &LabelLimits::default()).unwrap();
        WalRecord {
            new_series: vec![(SeriesId(0), labels)],
            series_ids: vec![SeriesId(0)],
            timestamps: vec![ts],
            values: vec![1.0],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn acknowledged_records_replay_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(WalMetrics::default());
        {
            let wal = Wal::open(dir.path(), metrics.clone(), |_| {}).unwrap();
            let acks: Vec<_> = (0..100).map(|i| wal.submit(&record(i))).collect();
            for a in acks {
                a.await.unwrap().unwrap();
            }
            // Group commit: far fewer fsyncs than records.
            assert!(metrics.fsyncs.load(Ordering::Relaxed) <= 100);
        }
        let mut seen = Vec::new();
        let _wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |r| {
            seen.extend(r.timestamps)
        })
        .unwrap();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn unsynced_records_are_written_without_an_fsync_and_synced_by_the_next_durable_one() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(WalMetrics::default());
        {
            let wal = Wal::open(dir.path(), metrics.clone(), |_| {}).unwrap();
            for i in 0..5 {
                wal.submit_unsynced(&record(i)).await.unwrap().unwrap();
            }
            assert_eq!(metrics.fsyncs.load(Ordering::Relaxed), 0);
            assert_eq!(metrics.records.load(Ordering::Relaxed), 5);
            wal.submit(&record(5)).await.unwrap().unwrap();
            assert_eq!(metrics.fsyncs.load(Ordering::Relaxed), 1);
            wal.submit_unsynced(&record(6)).await.unwrap().unwrap();
            assert_eq!(metrics.fsyncs.load(Ordering::Relaxed), 1);
        }
        // The close synced the last one.
        assert_eq!(metrics.fsyncs.load(Ordering::Relaxed), 2);
        let mut seen = Vec::new();
        let _wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |r| {
            seen.extend(r.timestamps)
        })
        .unwrap();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn roll_then_delete_before_drops_only_older_segments() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |_| {}).unwrap();
        wal.submit(&record(1)).await.unwrap().unwrap();
        let seq = wal.roll().await.unwrap().unwrap();
        wal.submit(&record(2)).await.unwrap().unwrap();
        wal.delete_before(seq).unwrap();
        wal.close().await;
        let mut seen = Vec::new();
        let _wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |r| {
            seen.extend(r.timestamps)
        })
        .unwrap();
        assert_eq!(seen, [2]);
    }

    /// Replays the WAL in `dir` and answers every record's first timestamp.
    fn replayed(dir: &Path) -> Vec<i64> {
        let mut seen = Vec::new();
        let _wal = Wal::open(dir, Arc::new(WalMetrics::default()), |r| {
            seen.extend(r.timestamps)
        })
        .unwrap();
        seen
    }

    /// Writes record 1, has the write of record 2 fail with `fault` (it must be refused as
    /// unavailable), writes record 3, closes; answers the WAL's metrics.
    async fn refuse_the_second_of_three(dir: &Path, fault: Fault) -> Arc<WalMetrics> {
        let metrics = Arc::new(WalMetrics::default());
        let wal = Wal::open(dir, metrics.clone(), |_| {}).unwrap();
        wal.submit(&record(1)).await.unwrap().unwrap();
        wal.inject(fault);
        let err = wal.submit(&record(2)).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable, "{err}");
        wal.submit(&record(3)).await.unwrap().unwrap();
        wal.close().await;
        metrics
    }

    #[tokio::test]
    async fn a_failed_write_is_refused_and_records_acknowledged_after_it_survive() {
        let dir = tempfile::tempdir().unwrap();
        // The disk fills in the middle of the second write: half a frame is on disk.
        let metrics = refuse_the_second_of_three(dir.path(), Fault::ShortWrite).await;
        assert_eq!(metrics.write_failures.load(Ordering::Relaxed), 1);
        // The torn frame was cut before record 3 was written: replay reaches it, and finds no
        // damage to move aside.
        assert_eq!(replayed(dir.path()), [1, 3]);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("corrupt")), "{names:?}");
    }

    #[tokio::test]
    async fn a_failed_fsync_is_refused_and_its_record_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        refuse_the_second_of_three(dir.path(), Fault::FailedSync).await;
        // The refused record's bytes were cut back: what was refused does not come back.
        assert_eq!(replayed(dir.path()), [1, 3]);
    }

    #[tokio::test]
    async fn a_damaged_earlier_segment_keeps_its_good_records_and_later_segments_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), Arc::new(WalMetrics::default()), |_| {}).unwrap();
            wal.submit(&record(1)).await.unwrap().unwrap();
            wal.submit(&record(2)).await.unwrap().unwrap();
            wal.roll().await.unwrap().unwrap();
            wal.submit(&record(3)).await.unwrap().unwrap();
            wal.close().await;
        }
        // Flip a byte of the second record of the first segment.
        let first = segment::segment_path(dir.path(), 1);
        let mut bytes = fs::read(&first).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let metrics = Arc::new(WalMetrics::default());
        let mut seen = Vec::new();
        drop(Wal::open(dir.path(), metrics.clone(), |r| seen.extend(r.timestamps)).unwrap());
        assert_eq!(seen, [1, 3]);
        assert_eq!(metrics.corrupt_segments.load(Ordering::Relaxed), 1);
        // The good record is still in a segment: it survives the next restart too.
        assert_eq!(replayed(dir.path()), [1, 3]);
    }
}
