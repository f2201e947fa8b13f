//! Reading samples back: which sources a range touches, each series' samples of both kinds
//! merged from the blocks (in sequence order), the heads being flushed and the active head
//! (the newer source wins on equal timestamps), the newest sample only, and upper bounds of
//! what a read would answer.

use std::sync::Arc;

use super::{Db, ScanSources, SeriesHistograms, SeriesSamples};
use crate::block::BlockReader;
use crate::error::Result;
use crate::histogram::FloatHistogram;
use crate::labels::{SeriesId, Timestamp};

impl Db {
    /// Whether any of `ids` may have native histogram samples in `[mint, maxt]` (a cheap
    /// check: false for certain when no head and no block holds any histogram; else per
    /// series, the head's exactly and a block's by the series' time span).
    pub fn may_have_histograms(&self, ids: &[SeriesId], mint: Timestamp, maxt: Timestamp) -> bool {
        let state = self.state.read();
        let heads = || std::iter::once(&state.head).chain(state.frozen.iter().map(|f| &**f));
        let blocks: Vec<&Arc<BlockReader>> = state
            .blocks
            .iter()
            .filter(|b| b.meta().num_histograms > 0 && b.meta().overlaps(mint, maxt))
            .collect();
        if blocks.is_empty() && heads().all(|h| h.num_histograms() == 0) {
            return false;
        }
        ids.iter().any(|id| {
            heads().any(|h| {
                h.get(*id)
                    .is_some_and(|s| s.histogram_count(mint, maxt) > 0)
            }) || blocks
                .iter()
                .any(|b| b.histogram_bound(&[*id], mint, maxt) > 0)
        })
    }

    /// The newest histogram sample of each series in `[mint, maxt]`, in the order of `ids`;
    /// series with none are left out (as [`Db::read_newest`] for floats).
    pub async fn read_newest_histograms(
        &self,
        ids: &[SeriesId],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<SeriesHistograms>> {
        {
            let state = self.state.read();
            if state.frozen.is_empty()
                && !state
                    .blocks
                    .iter()
                    .any(|b| b.meta().num_histograms > 0 && b.meta().overlaps(mint, maxt))
            {
                return Ok(ids
                    .iter()
                    .filter_map(|id| {
                        let (t, h) = state.head.get(*id)?.newest_histogram_in(mint, maxt)?;
                        Some(SeriesHistograms {
                            id: *id,
                            timestamps: vec![t],
                            histograms: vec![h],
                        })
                    })
                    .collect());
            }
        }
        let mut all = self.read_histograms(ids, mint, maxt).await?;
        for s in &mut all {
            let n = s.timestamps.len();
            s.timestamps.drain(..n - 1);
            s.histograms.drain(..n - 1);
        }
        Ok(all)
    }

    /// How to read `[mint, maxt]` with a scan: the blocks that share no time with any other
    /// source can be read straight from their files, since none of their samples can be
    /// shadowed; every other stretch of time (heads, and blocks overlapping another source)
    /// must be merged by [`Db::read`], newest source winning.
    pub fn scan_sources(&self, mint: Timestamp, maxt: Timestamp) -> ScanSources {
        let state = self.state.read();
        // Each source's time span inside the range; `None` for a head.
        let mut spans: Vec<(Timestamp, Timestamp, Option<Arc<BlockReader>>)> = Vec::new();
        for b in &state.blocks {
            if b.meta().overlaps(mint, maxt) {
                let m = b.meta();
                spans.push((m.min_time.max(mint), m.max_time.min(maxt), Some(b.clone())));
            }
        }
        for head in state.frozen.iter().map(|f| f.as_ref()).chain([&state.head]) {
            if let (Some(lo), Some(hi)) = (head.min_time(), head.max_time())
                && lo <= maxt
                && hi >= mint
            {
                spans.push((lo.max(mint), hi.min(maxt), None));
            }
        }
        drop(state);
        spans.sort_by_key(|s| (s.0, s.1));
        let mut out = ScanSources::default();
        let mut i = 0;
        while i < spans.len() {
            // The cluster of sources whose spans chain into one stretch of time.
            let (lo, mut hi) = (spans[i].0, spans[i].1);
            let mut j = i + 1;
            while j < spans.len() && spans[j].0 <= hi {
                hi = hi.max(spans[j].1);
                j += 1;
            }
            match &spans[i].2 {
                Some(block) if j == i + 1 => out.direct.push(block.clone()),
                _ => out.merged.push((lo, hi)),
            }
            i = j;
        }
        out
    }

    /// The newest sample of each series in `[mint, maxt]` (what an instant selector needs), in
    /// the order of `ids`; series with none are left out. From the head alone when no block
    /// or frozen head shares the range (the common case for recent data), else from the
    /// merged read.
    pub async fn read_newest(
        &self,
        ids: &[SeriesId],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<SeriesSamples>> {
        {
            let state = self.state.read();
            if state.frozen.is_empty()
                && !state.blocks.iter().any(|b| b.meta().overlaps(mint, maxt))
            {
                return Ok(ids
                    .iter()
                    .filter_map(|id| {
                        let (t, v) = state.head.get(*id)?.newest_in(mint, maxt)?;
                        Some(SeriesSamples {
                            id: *id,
                            timestamps: vec![t],
                            values: vec![v],
                        })
                    })
                    .collect());
            }
        }
        let mut all = self.read(ids, mint, maxt).await?;
        for s in &mut all {
            let n = s.timestamps.len();
            s.timestamps.drain(..n - 1);
            s.values.drain(..n - 1);
        }
        Ok(all)
    }

    /// An upper bound of the samples [`Db::read`] (and [`Db::read_histograms`]) would answer for the same arguments, without
    /// reading any: each block's rows of the series whose time span meets the range, and the
    /// head's chunks that meet it ([`crate::head::MemSeries::count_bound`]). Callers check it
    /// against their limit before reading, so a read never builds more than they allow.
    pub fn sample_bound(&self, ids: &[SeriesId], mint: Timestamp, maxt: Timestamp) -> usize {
        let state = self.state.read();
        let mut n = 0usize;
        for b in state
            .blocks
            .iter()
            .filter(|b| b.meta().overlaps(mint, maxt))
        {
            n = n.saturating_add(b.row_selection(Some(ids), mint, maxt).1);
            n = n.saturating_add(b.histogram_bound(ids, mint, maxt));
        }
        for head in std::iter::once(&state.head).chain(state.frozen.iter().map(|f| &**f)) {
            for id in ids {
                if let Some(s) = head.get(*id) {
                    n = n.saturating_add(s.count_bound(mint, maxt));
                    n = n.saturating_add(s.histogram_count(mint, maxt));
                }
            }
        }
        n
    }

    /// The merged samples of each series in `[mint, maxt]`, in the order of `ids`. Series with
    /// no samples there are left out.
    pub async fn read(
        &self,
        ids: &[SeriesId],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<SeriesSamples>> {
        // Snapshot under the lock: head samples are copied, blocks and frozen heads shared.
        let (blocks, frozen, head_runs) = {
            let state = self.state.read();
            let blocks: Vec<Arc<BlockReader>> = state
                .blocks
                .iter()
                .filter(|b| b.meta().overlaps(mint, maxt))
                .cloned()
                .collect();
            let head_runs: Vec<(Vec<i64>, Vec<f64>)> = ids
                .iter()
                .map(|id| {
                    let (mut t, mut v) = (Vec::new(), Vec::new());
                    if let Some(s) = state.head.get(*id) {
                        s.range_into(mint, maxt, &mut t, &mut v);
                    }
                    (t, v)
                })
                .collect();
            (blocks, state.frozen.clone(), head_runs)
        };
        let mut block_reads = Vec::with_capacity(blocks.len());
        for b in &blocks {
            block_reads.push(b.read(ids, mint, maxt).await?);
        }
        // Only the head has samples in range (reads of recent data): its copies are the result.
        if frozen.is_empty() && block_reads.iter().all(|r| r.runs.is_empty()) {
            return Ok(ids
                .iter()
                .zip(head_runs)
                .filter(|(_, (t, _))| !t.is_empty())
                .map(|(id, (timestamps, values))| SeriesSamples {
                    id: *id,
                    timestamps,
                    values,
                })
                .collect());
        }
        // Per series: its runs from every source, oldest source first.
        let pos: foldhash::HashMap<SeriesId, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut runs: Vec<Vec<Run<'_>>> = vec![Vec::new(); ids.len()];
        for r in &block_reads {
            for (id, range) in &r.runs {
                let i = pos[id];
                runs[i].push((
                    &r.timestamps.values()[range.clone()],
                    &r.values.values()[range.clone()],
                ));
            }
        }
        // Frozen heads are immutable: decode them outside the lock.
        let frozen_runs: Vec<Vec<IndexedRun>> = frozen
            .iter()
            .map(|f| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, id)| {
                        let s = f.get(*id)?;
                        let (mut t, mut v) = (Vec::new(), Vec::new());
                        s.range_into(mint, maxt, &mut t, &mut v);
                        (!t.is_empty()).then_some((i, t, v))
                    })
                    .collect()
            })
            .collect();
        for f in &frozen_runs {
            for (i, t, v) in f {
                runs[*i].push((t, v));
            }
        }
        for (i, (t, v)) in head_runs.iter().enumerate() {
            if !t.is_empty() {
                runs[i].push((t, v));
            }
        }
        Ok(ids
            .iter()
            .zip(runs)
            .filter(|(_, r)| !r.is_empty())
            .map(|(id, r)| {
                let (timestamps, values) = merge_runs(&r);
                SeriesSamples {
                    id: *id,
                    timestamps,
                    values,
                }
            })
            .collect())
    }

    /// The merged native histogram samples of each series in `[mint, maxt]`, in the order of
    /// `ids`; series with none there are left out. Sources merge as in [`Db::read`].
    pub async fn read_histograms(
        &self,
        ids: &[SeriesId],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<SeriesHistograms>> {
        type Owned = (Vec<i64>, Vec<Arc<FloatHistogram>>);
        let (blocks, frozen, head_runs) = {
            let state = self.state.read();
            let blocks: Vec<Arc<BlockReader>> = state
                .blocks
                .iter()
                .filter(|b| b.meta().num_histograms > 0 && b.meta().overlaps(mint, maxt))
                .cloned()
                .collect();
            let head_runs: Vec<Owned> = ids
                .iter()
                .map(|id| {
                    let (mut t, mut h) = (Vec::new(), Vec::new());
                    if let Some(s) = state.head.get(*id) {
                        s.histograms_into(mint, maxt, &mut t, &mut h);
                    }
                    (t, h)
                })
                .collect();
            (blocks, state.frozen.clone(), head_runs)
        };
        let mut block_reads = Vec::with_capacity(blocks.len());
        for b in &blocks {
            block_reads.push(b.read_histograms(ids, mint, maxt).await?);
        }
        let frozen_runs: Vec<Vec<(usize, Owned)>> = frozen
            .iter()
            .map(|f| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, id)| {
                        let s = f.get(*id)?;
                        let (mut t, mut h) = (Vec::new(), Vec::new());
                        s.histograms_into(mint, maxt, &mut t, &mut h);
                        (!t.is_empty()).then_some((i, (t, h)))
                    })
                    .collect()
            })
            .collect();
        let pos: foldhash::HashMap<SeriesId, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut runs: Vec<Vec<Run<'_, Arc<FloatHistogram>>>> = vec![Vec::new(); ids.len()];
        for r in &block_reads {
            for (id, range) in &r.runs {
                runs[pos[id]].push((&r.timestamps[range.clone()], &r.histograms[range.clone()]));
            }
        }
        for f in &frozen_runs {
            for (i, (t, h)) in f {
                runs[*i].push((t, h));
            }
        }
        for (i, (t, h)) in head_runs.iter().enumerate() {
            if !t.is_empty() {
                runs[i].push((t, h));
            }
        }
        Ok(ids
            .iter()
            .zip(runs)
            .filter(|(_, r)| !r.is_empty())
            .map(|(id, r)| {
                let (timestamps, histograms) = merge_runs(&r);
                SeriesHistograms {
                    id: *id,
                    timestamps,
                    histograms,
                }
            })
            .collect())
    }
}

/// A decoded run of the series at this index of the requested ids.
type IndexedRun = (usize, Vec<i64>, Vec<f64>);

/// One source's samples of one series: timestamps and values, sorted by time.
pub(crate) type Run<'a, T = f64> = (&'a [i64], &'a [T]);

/// Merges time-sorted runs, oldest source first: on equal timestamps the later run wins.
pub(crate) fn merge_runs<T: Clone>(runs: &[Run<'_, T>]) -> (Vec<i64>, Vec<T>) {
    if let [(t, v)] = runs {
        return (t.to_vec(), v.to_vec());
    }
    let total: usize = runs.iter().map(|r| r.0.len()).sum();
    // The common case: each source covers its own time span (blocks are aligned windows,
    // the head is newer). Ordered by first timestamp, disjoint runs simply concatenate.
    let mut order: Vec<&Run<'_, T>> = runs.iter().filter(|r| !r.0.is_empty()).collect();
    order.sort_by_key(|r| r.0[0]);
    if order
        .windows(2)
        .all(|w| w[0].0[w[0].0.len() - 1] < w[1].0[0])
    {
        let mut ts = Vec::with_capacity(total);
        let mut vs = Vec::with_capacity(total);
        for (t, v) in order {
            ts.extend_from_slice(t);
            vs.extend_from_slice(v);
        }
        return (ts, vs);
    }
    let mut all: Vec<(i64, usize, &T)> = Vec::with_capacity(total);
    for (rank, (t, v)) in runs.iter().enumerate() {
        all.extend(t.iter().zip(v.iter()).map(|(t, v)| (*t, rank, v)));
    }
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut ts = Vec::with_capacity(total);
    let mut vs = Vec::with_capacity(total);
    for (t, _, v) in all {
        if ts.last() == Some(&t) {
            *vs.last_mut().expect("same length") = v.clone();
        } else {
            ts.push(t);
            vs.push(v.clone());
        }
    }
    (ts, vs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_runs_concatenate_in_time_order() {
        let late: (&[i64], &[f64]) = (&[5, 6], &[5.0, 6.0]);
        let early: (&[i64], &[f64]) = (&[1, 2], &[1.0, 2.0]);
        assert_eq!(
            merge_runs(&[late, early]),
            (vec![1, 2, 5, 6], vec![1.0, 2.0, 5.0, 6.0])
        );
    }

    #[test]
    fn merge_prefers_the_newer_source_on_equal_timestamps() {
        let old: (&[i64], &[f64]) = (&[1, 2, 3], &[1.0, 2.0, 3.0]);
        let new: (&[i64], &[f64]) = (&[2, 4], &[20.0, 40.0]);
        assert_eq!(
            merge_runs(&[old, new]),
            (vec![1, 2, 3, 4], vec![1.0, 20.0, 3.0, 40.0])
        );
    }
}
