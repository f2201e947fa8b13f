//! The head: acknowledged samples not yet in a block, per series, in memory, queryable at once.
//!
//! Each series keeps its newest samples in a small open buffer and older ones in compressed
//! [`Chunk`]s of about [`CHUNK_SAMPLES`] samples (Gorilla encoding, one to two bytes a sample for
//! regular scrapes). Appends in time order are a push; a late sample is inserted in place (its
//! chunk re-encoded); a sample at a timestamp the series already has replaces the old value
//! (the last write wins).

mod chunk;

use std::collections::HashMap;
use std::sync::Arc;

pub use chunk::Chunk;

use crate::histogram::FloatHistogram;
use crate::labels::{SeriesId, Timestamp};

/// Samples a chunk holds before it is closed (Prometheus cuts its XOR chunks at 120).
pub const CHUNK_SAMPLES: usize = 120;

/// One series' samples: closed chunks (sorted, not overlapping) then an open buffer of newer
/// samples; timestamps are unique.
#[derive(Debug, Default, Clone)]
pub struct MemSeries {
    chunks: Vec<Chunk>,
    open_ts: Vec<Timestamp>,
    open_vals: Vec<f64>,
    /// Native histogram samples, for the few series that have them.
    hists: Option<Box<HistSamples>>,
}

/// A series' native histogram samples, sorted by time, timestamps unique. Kept whole (one
/// shared value per sample); `docs/storage-format.md` reports what that costs.
#[derive(Debug, Default, Clone)]
struct HistSamples {
    ts: Vec<Timestamp>,
    hs: Vec<Arc<FloatHistogram>>,
}

impl MemSeries {
    /// Adds a histogram sample; answers whether it was new (false: it replaced one at the same
    /// time).
    pub fn insert_histogram(&mut self, t: Timestamp, h: Arc<FloatHistogram>) -> bool {
        let hs = self.hists.get_or_insert_default();
        if hs.ts.last().is_none_or(|last| t > *last) {
            hs.ts.push(t);
            hs.hs.push(h);
            return true;
        }
        let pos = hs.ts.partition_point(|x| *x < t);
        if hs.ts.get(pos) == Some(&t) {
            hs.hs[pos] = h;
            return false;
        }
        hs.ts.insert(pos, t);
        hs.hs.insert(pos, h);
        true
    }

    /// The histogram samples with `mint <= t <= maxt`, appended to the given vectors.
    pub fn histograms_into(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        ts: &mut Vec<Timestamp>,
        hs: &mut Vec<Arc<FloatHistogram>>,
    ) {
        let Some(h) = &self.hists else { return };
        let lo = h.ts.partition_point(|x| *x < mint);
        let hi = h.ts.partition_point(|x| *x <= maxt).max(lo);
        ts.extend_from_slice(&h.ts[lo..hi]);
        hs.extend_from_slice(&h.hs[lo..hi]);
    }

    /// How many histogram samples fall in `[mint, maxt]`.
    pub fn histogram_count(&self, mint: Timestamp, maxt: Timestamp) -> usize {
        self.hists.as_ref().map_or(0, |h| {
            let lo = h.ts.partition_point(|x| *x < mint);
            h.ts.partition_point(|x| *x <= maxt).saturating_sub(lo)
        })
    }

    /// The newest histogram sample with `mint <= t <= maxt`.
    pub fn newest_histogram_in(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Option<(Timestamp, Arc<FloatHistogram>)> {
        let h = self.hists.as_ref()?;
        let hi = h.ts.partition_point(|x| *x <= maxt);
        (hi > 0 && h.ts[hi - 1] >= mint).then(|| (h.ts[hi - 1], h.hs[hi - 1].clone()))
    }

    /// Whether the series holds any histogram sample.
    pub fn has_histograms(&self) -> bool {
        self.hists.as_ref().is_some_and(|h| !h.ts.is_empty())
    }

    /// The float samples' time span, and the histograms', together.
    pub fn histogram_span(&self) -> Option<(Timestamp, Timestamp)> {
        let h = self.hists.as_ref()?;
        Some((*h.ts.first()?, *h.ts.last()?))
    }
    /// Adds a sample; answers whether it was new (false: it replaced a sample at the same time).
    pub fn insert(&mut self, t: Timestamp, v: f64) -> bool {
        let after_chunks = self.chunks.last().is_none_or(|c| t > c.max_time());
        if after_chunks {
            let new = insert_sorted(&mut self.open_ts, &mut self.open_vals, t, v);
            if self.open_ts.len() >= CHUNK_SAMPLES {
                self.chunks
                    .push(Chunk::encode(&self.open_ts, &self.open_vals));
                self.open_ts.clear();
                self.open_vals.clear();
            }
            return new;
        }
        // A late sample: re-encode the chunk it falls in (or the first one after it).
        let i = self.chunks.partition_point(|c| c.max_time() < t);
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        self.chunks[i].decode_into(&mut ts, &mut vs);
        let new = insert_sorted(&mut ts, &mut vs, t, v);
        self.chunks[i] = Chunk::encode(&ts, &vs);
        new
    }

    /// The samples with `mint <= t <= maxt`, appended to the given vectors.
    pub fn range_into(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        ts: &mut Vec<Timestamp>,
        vs: &mut Vec<f64>,
    ) {
        if mint > maxt {
            return;
        }
        for c in self
            .chunks
            .iter()
            .filter(|c| c.max_time() >= mint && c.min_time() <= maxt)
        {
            c.decode_range_into(mint, maxt, ts, vs);
        }
        let lo = self.open_ts.partition_point(|x| *x < mint);
        let hi = self.open_ts.partition_point(|x| *x <= maxt).max(lo);
        ts.extend_from_slice(&self.open_ts[lo..hi]);
        vs.extend_from_slice(&self.open_vals[lo..hi]);
    }

    /// The newest sample with `mint <= t <= maxt`, decoding at most one chunk.
    pub fn newest_in(&self, mint: Timestamp, maxt: Timestamp) -> Option<(Timestamp, f64)> {
        if mint > maxt {
            return None;
        }
        // The open buffer is newer than every chunk.
        let hi = self.open_ts.partition_point(|x| *x <= maxt);
        if hi > 0 {
            return (self.open_ts[hi - 1] >= mint)
                .then(|| (self.open_ts[hi - 1], self.open_vals[hi - 1]));
        }
        let i = self.chunks.partition_point(|c| c.min_time() <= maxt);
        let c = self.chunks[..i].last()?;
        if c.max_time() < mint {
            return None;
        }
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        c.decode_range_into(mint, maxt, &mut ts, &mut vs);
        Some((*ts.last()?, *vs.last()?))
    }

    /// Every sample, decoded.
    pub fn samples(&self) -> (Vec<Timestamp>, Vec<f64>) {
        let (mut ts, mut vs) = (
            Vec::with_capacity(self.len()),
            Vec::with_capacity(self.len()),
        );
        self.range_into(Timestamp::MIN, Timestamp::MAX, &mut ts, &mut vs);
        (ts, vs)
    }

    /// Whether any sample falls in `[mint, maxt]` (chunk spans are kept, so nothing is decoded
    /// unless a chunk straddles the range without a sample in it).
    pub fn has_samples_in(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        if mint > maxt {
            return false;
        }
        if self.histogram_count(mint, maxt) > 0 {
            return true;
        }
        let in_open = {
            let lo = self.open_ts.partition_point(|x| *x < mint);
            self.open_ts.get(lo).is_some_and(|t| *t <= maxt)
        };
        in_open
            || self.chunks.iter().any(|c| {
                c.max_time() >= mint
                    && c.min_time() <= maxt
                    && ((c.min_time() >= mint || c.max_time() <= maxt) || {
                        let (mut ts, mut vs) = (Vec::new(), Vec::new());
                        c.decode_into(&mut ts, &mut vs);
                        let lo = ts.partition_point(|x| *x < mint);
                        ts.get(lo).is_some_and(|t| *t <= maxt)
                    })
            })
    }

    /// Float samples (histogram samples are counted by [`MemSeries::histogram_count`]).
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::count).sum::<usize>() + self.open_ts.len()
    }

    /// An upper bound of the samples in `[mint, maxt]`, decoding nothing: the open buffer's
    /// exactly, and the whole of every chunk whose span meets the range (at most one chunk of
    /// 120 samples too many at each end).
    pub fn count_bound(&self, mint: Timestamp, maxt: Timestamp) -> usize {
        if mint > maxt {
            return 0;
        }
        let lo = self.open_ts.partition_point(|x| *x < mint);
        let hi = self.open_ts.partition_point(|x| *x <= maxt).max(lo);
        self.chunks
            .iter()
            .filter(|c| c.max_time() >= mint && c.min_time() <= maxt)
            .map(Chunk::count)
            .sum::<usize>()
            + (hi - lo)
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.open_ts.is_empty() && !self.has_histograms()
    }

    /// Heap bytes held by this series' samples.
    pub fn byte_size(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.byte_size() + std::mem::size_of::<Chunk>())
            .sum::<usize>()
            + self.open_ts.capacity() * 8
            + self.open_vals.capacity() * 8
            + self.hists.as_ref().map_or(0, |h| {
                std::mem::size_of::<HistSamples>()
                    + h.ts.capacity() * 8
                    + h.hs.capacity() * 8
                    + h.hs.iter().map(|x| x.byte_size() + 16).sum::<usize>()
            })
    }
}

/// Inserts into sorted vectors; an equal timestamp replaces. Answers whether it was new.
fn insert_sorted(ts: &mut Vec<Timestamp>, vs: &mut Vec<f64>, t: Timestamp, v: f64) -> bool {
    if ts.last().is_none_or(|last| t > *last) {
        ts.push(t);
        vs.push(v);
        return true;
    }
    let pos = ts.partition_point(|x| *x < t);
    if ts.get(pos) == Some(&t) {
        vs[pos] = v;
        return false;
    }
    ts.insert(pos, t);
    vs.insert(pos, v);
    true
}

/// Series ids below this are found through a flat index (4 bytes per id); larger ones (after
/// tens of millions of series were ever created) through a hash map.
const FLAT_IDS: u64 = 1 << 24;

/// Samples per series, with the time span and count kept up to date.
///
/// Series live in a dense vector in the order they were first appended, found by id through a
/// flat index: a scrape or remote write appends series in about the order their ids were given,
/// so appends walk memory forwards instead of hashing to random places.
#[derive(Debug, Default)]
pub struct Head {
    /// Slot in `dense` by id (`u32::MAX`: not in this head), for ids below [`FLAT_IDS`].
    index: Vec<u32>,
    /// Slots of larger ids.
    overflow: HashMap<SeriesId, u32, foldhash::fast::RandomState>,
    dense: Vec<(SeriesId, MemSeries)>,
    num_samples: usize,
    /// Histogram samples among `num_samples`.
    num_histograms: usize,
    min_time: Option<Timestamp>,
    max_time: Option<Timestamp>,
}

impl Head {
    fn slot(&self, id: SeriesId) -> Option<usize> {
        if id.0 < FLAT_IDS {
            match self.index.get(id.0 as usize) {
                Some(&s) if s != u32::MAX => Some(s as usize),
                _ => None,
            }
        } else {
            self.overflow.get(&id).map(|s| *s as usize)
        }
    }

    fn slot_or_insert(&mut self, id: SeriesId) -> usize {
        if let Some(s) = self.slot(id) {
            return s;
        }
        let s = self.dense.len();
        self.dense.push((id, MemSeries::default()));
        if id.0 < FLAT_IDS {
            let i = id.0 as usize;
            if self.index.len() <= i {
                self.index.resize((i + 1).next_power_of_two(), u32::MAX);
            }
            self.index[i] = s as u32;
        } else {
            self.overflow.insert(id, s as u32);
        }
        s
    }

    /// Appends column slices of one batch.
    pub fn append(&mut self, ids: &[SeriesId], timestamps: &[Timestamp], values: &[f64]) {
        for ((id, &t), &v) in ids.iter().zip(timestamps).zip(values) {
            let s = self.slot_or_insert(*id);
            if self.dense[s].1.insert(t, v) {
                self.num_samples += 1;
            }
            self.min_time = Some(self.min_time.map_or(t, |m| m.min(t)));
            self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        }
    }

    /// Appends histogram samples.
    pub fn append_histograms(
        &mut self,
        ids: &[SeriesId],
        timestamps: &[Timestamp],
        hists: &[Arc<FloatHistogram>],
    ) {
        for ((id, &t), h) in ids.iter().zip(timestamps).zip(hists) {
            let s = self.slot_or_insert(*id);
            if self.dense[s].1.insert_histogram(t, h.clone()) {
                self.num_samples += 1;
                self.num_histograms += 1;
            }
            self.min_time = Some(self.min_time.map_or(t, |m| m.min(t)));
            self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        }
    }

    pub fn get(&self, id: SeriesId) -> Option<&MemSeries> {
        self.slot(id).map(|s| &self.dense[s].1)
    }

    pub fn series(&self) -> impl Iterator<Item = (&SeriesId, &MemSeries)> {
        self.dense.iter().map(|(id, s)| (id, s))
    }

    pub fn num_series(&self) -> usize {
        self.dense.len()
    }

    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// Histogram samples it holds (0: no series here has any).
    pub fn num_histograms(&self) -> usize {
        self.num_histograms
    }

    pub fn min_time(&self) -> Option<Timestamp> {
        self.min_time
    }

    pub fn max_time(&self) -> Option<Timestamp> {
        self.max_time
    }

    pub fn is_empty(&self) -> bool {
        self.num_samples == 0
    }

    /// Bytes held by sample buffers and chunks.
    pub fn sample_bytes(&self) -> usize {
        self.dense.iter().map(|(_, s)| s.byte_size()).sum::<usize>() + self.index.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &MemSeries) -> (Vec<i64>, Vec<f64>) {
        s.samples()
    }

    #[test]
    fn series_are_found_by_small_and_large_ids() {
        let mut h = Head::default();
        let ids = [
            SeriesId(5),
            SeriesId(FLAT_IDS + 7),
            SeriesId(0),
            SeriesId(5),
        ];
        h.append(&ids, &[1, 1, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(h.num_series(), 3);
        assert_eq!(h.num_samples(), 4);
        assert_eq!(
            all(h.get(SeriesId(5)).unwrap()),
            (vec![1, 2], vec![1.0, 4.0])
        );
        assert_eq!(all(h.get(SeriesId(FLAT_IDS + 7)).unwrap()).1, vec![2.0]);
        assert!(h.get(SeriesId(6)).is_none() && h.get(SeriesId(1 << 40)).is_none());
        let mut seen: Vec<u64> = h.series().map(|(id, _)| id.0).collect();
        seen.sort();
        assert_eq!(seen, [0, 5, FLAT_IDS + 7]);
    }

    #[test]
    fn late_samples_are_inserted_in_order_and_duplicates_keep_the_last_value() {
        let mut s = MemSeries::default();
        for (t, v) in [(10, 1.0), (30, 3.0), (20, 2.0), (30, 4.0), (5, 0.5)] {
            s.insert(t, v);
        }
        assert_eq!(all(&s), (vec![5, 10, 20, 30], vec![0.5, 1.0, 2.0, 4.0]));
    }

    #[test]
    fn late_samples_land_inside_closed_chunks() {
        let mut s = MemSeries::default();
        for i in 0..(3 * CHUNK_SAMPLES as i64) {
            s.insert(i * 10, i as f64);
        }
        assert!(s.chunks.len() >= 2);
        assert!(s.insert(15, -1.0), "a new sample between two old ones");
        assert!(
            !s.insert(20, -2.0),
            "a duplicate inside a closed chunk replaces"
        );
        assert!(s.insert(-5, -3.0), "before everything");
        let (ts, vs) = all(&s);
        assert_eq!(ts.len(), 3 * CHUNK_SAMPLES + 2);
        assert_eq!(&ts[..5], &[-5, 0, 10, 15, 20]);
        assert_eq!(&vs[..5], &[-3.0, 0.0, 1.0, -1.0, -2.0]);
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn range_is_inclusive_at_both_ends_across_chunks() {
        let mut s = MemSeries::default();
        for i in 0..300 {
            s.insert(i * 10, i as f64);
        }
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        s.range_into(1190, 1210, &mut ts, &mut vs);
        assert_eq!(ts, [1190, 1200, 1210]);
        assert_eq!(vs, [119.0, 120.0, 121.0]);
        assert!(s.has_samples_in(1195, 1200));
        assert!(!s.has_samples_in(1191, 1199));
        assert!(!s.has_samples_in(5000, 6000));
        assert!(!s.has_samples_in(30, 20));
    }

    #[test]
    fn newest_in_is_the_last_sample_of_the_range() {
        let mut s = MemSeries::default();
        // Gaps inside closed chunks and in the open buffer.
        for i in (0..300).filter(|i| i % 7 != 3) {
            s.insert(i * 10, i as f64);
        }
        assert!(s.chunks.len() >= 2 && !s.open_ts.is_empty());
        for (mint, maxt) in [
            (0, 3000),
            (1190, 1210),
            (31, 39),
            (25, 34),
            (-100, 0),
            (2900, 2990),
            (2995, 5000),
            (3000, 5000),
            (50, 40),
        ] {
            let (mut ts, mut vs) = (Vec::new(), Vec::new());
            s.range_into(mint, maxt, &mut ts, &mut vs);
            let want = ts.last().copied().zip(vs.last().copied());
            assert_eq!(s.newest_in(mint, maxt), want, "[{mint}, {maxt}]");
        }
    }

    #[test]
    fn histograms_sit_beside_floats_sorted_and_replacing_on_equal_times() {
        let h = |c: f64| {
            Arc::new(FloatHistogram {
                count: c,
                ..Default::default()
            })
        };
        let mut head = Head::default();
        head.append(&[SeriesId(1)], &[10], &[1.0]);
        head.append_histograms(
            &[SeriesId(1), SeriesId(1), SeriesId(1), SeriesId(2)],
            &[30, 20, 30, 5],
            &[h(1.0), h(2.0), h(3.0), h(4.0)],
        );
        assert_eq!(head.num_samples(), 4);
        assert_eq!((head.min_time(), head.max_time()), (Some(5), Some(30)));
        let s = head.get(SeriesId(1)).unwrap();
        let (mut ts, mut hs) = (Vec::new(), Vec::new());
        s.histograms_into(0, 100, &mut ts, &mut hs);
        assert_eq!(ts, [20, 30]);
        assert_eq!(hs.iter().map(|h| h.count).collect::<Vec<_>>(), [2.0, 3.0]);
        assert_eq!(s.samples(), (vec![10], vec![1.0]));
        assert_eq!(s.histogram_count(21, 30), 1);
        assert!(s.has_samples_in(25, 30) && !s.has_samples_in(11, 19));
        let only = head.get(SeriesId(2)).unwrap();
        assert!(!only.is_empty() && only.samples().0.is_empty());
        assert_eq!(only.histogram_span(), Some((5, 5)));
    }

    #[test]
    fn head_counts_only_new_samples() {
        let mut h = Head::default();
        h.append(
            &[SeriesId(1), SeriesId(1), SeriesId(2)],
            &[1, 1, 5],
            &[1.0, 2.0, 3.0],
        );
        assert_eq!(h.num_samples(), 2);
        assert_eq!((h.min_time(), h.max_time()), (Some(1), Some(5)));
        assert_eq!(h.get(SeriesId(1)).unwrap().samples().1, [2.0]);
    }
}
