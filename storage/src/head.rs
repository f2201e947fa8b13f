//! The head: acknowledged samples not yet in a block, per series, in memory, queryable at once.
//!
//! Each series keeps its samples sorted by time in two vectors. Appends in time order are a
//! push; a late sample is inserted in place; a sample at a timestamp the series already has
//! replaces the old value (the last write wins).

use std::collections::HashMap;

use crate::labels::{SeriesId, Timestamp};

/// One series' samples, sorted by timestamp, unique timestamps.
#[derive(Debug, Default, Clone)]
pub struct MemSeries {
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
}

impl MemSeries {
    /// Adds a sample; answers whether it was new (false: it replaced a sample at the same time).
    pub fn insert(&mut self, t: Timestamp, v: f64) -> bool {
        match self.timestamps.last() {
            None => {}
            Some(&last) if t > last => {}
            Some(_) => {
                let pos = self.timestamps.partition_point(|x| *x < t);
                if self.timestamps.get(pos) == Some(&t) {
                    self.values[pos] = v;
                    return false;
                }
                self.timestamps.insert(pos, t);
                self.values.insert(pos, v);
                return true;
            }
        }
        self.timestamps.push(t);
        self.values.push(v);
        true
    }

    /// The samples with `mint <= t <= maxt`.
    pub fn range(&self, mint: Timestamp, maxt: Timestamp) -> (&[Timestamp], &[f64]) {
        let lo = self.timestamps.partition_point(|x| *x < mint);
        let hi = self.timestamps.partition_point(|x| *x <= maxt);
        let hi = hi.max(lo);
        (&self.timestamps[lo..hi], &self.values[lo..hi])
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// Samples per series, with the time span and count kept up to date.
#[derive(Debug, Default)]
pub struct Head {
    series: HashMap<SeriesId, MemSeries>,
    num_samples: usize,
    min_time: Option<Timestamp>,
    max_time: Option<Timestamp>,
}

impl Head {
    /// Appends column slices of one batch.
    pub fn append(&mut self, ids: &[SeriesId], timestamps: &[Timestamp], values: &[f64]) {
        for ((id, &t), &v) in ids.iter().zip(timestamps).zip(values) {
            if self.series.entry(*id).or_default().insert(t, v) {
                self.num_samples += 1;
            }
            self.min_time = Some(self.min_time.map_or(t, |m| m.min(t)));
            self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        }
    }

    pub fn get(&self, id: SeriesId) -> Option<&MemSeries> {
        self.series.get(&id)
    }

    pub fn series(&self) -> impl Iterator<Item = (&SeriesId, &MemSeries)> {
        self.series.iter()
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    pub fn num_samples(&self) -> usize {
        self.num_samples
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

    /// Bytes held by sample buffers (capacity, as the allocator sees it).
    pub fn sample_bytes(&self) -> usize {
        self.series
            .values()
            .map(|s| s.timestamps.capacity() * 8 + s.values.capacity() * 8)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_samples_are_inserted_in_order_and_duplicates_keep_the_last_value() {
        let mut s = MemSeries::default();
        for (t, v) in [(10, 1.0), (30, 3.0), (20, 2.0), (30, 4.0), (5, 0.5)] {
            s.insert(t, v);
        }
        assert_eq!(s.timestamps, [5, 10, 20, 30]);
        assert_eq!(s.values, [0.5, 1.0, 2.0, 4.0]);
    }

    #[test]
    fn range_is_inclusive_at_both_ends() {
        let mut s = MemSeries::default();
        for t in [10, 20, 30, 40] {
            s.insert(t, t as f64);
        }
        assert_eq!(s.range(20, 30).0, [20, 30]);
        assert_eq!(s.range(41, 50).0, [] as [i64; 0]);
        assert_eq!(s.range(30, 20).0, [] as [i64; 0]);
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
        assert_eq!(h.get(SeriesId(1)).unwrap().values, [2.0]);
    }
}
