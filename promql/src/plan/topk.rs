//! `topk`, `bottomk` and `limitk`: the k highest, lowest or first series of each group and
//! step, keeping their labels; `limit_ratio`: a stable share of the series, picked by
//! Prometheus's label-set hash; and the check that a vector holds each label set once.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use datafusion::arrow::array::RecordBatch;

use super::Param;
use super::input::{SeriesOut, VectorBuilder, for_each_vector_row, intern_samples, scalar_by_step};
use crate::error::{Error, Result};
use crate::labelset::Grouping;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopKKind {
    Top,
    Bottom,
    Limit,
    /// `limit_ratio(r, …)`: the parameter is the ratio.
    LimitRatio,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopKOp {
    pub kind: TopKKind,
    /// k, unless the node's second input gives it per step.
    pub k: Param,
    pub grouping: Grouping,
    /// The input may hold native histograms (`limitk`, `limit_ratio`: they pass through).
    pub histograms: bool,
}

impl TopKOp {
    pub(super) fn evaluate(
        &self,
        input: &[RecordBatch],
        k_steps: Option<&[RecordBatch]>,
    ) -> Result<RecordBatch> {
        let per_step = k_steps.map(scalar_by_step);
        // The parameter at step `t` (NaN for a step the parameter's query has no value at).
        let param_at = |t: i64| match &per_step {
            Some(m) => m.get(&t).copied().unwrap_or(f64::NAN),
            None => self.k.0,
        };
        let k_at = |t: i64| -> Result<usize> {
            let k = param_at(t);
            if k.is_nan() {
                return Err(Error::Execution("Parameter value is NaN".into()));
            }
            if k >= 9.223_372_036_854_776e18 {
                return Err(Error::Execution(format!(
                    "scalar value {k} overflows int64"
                )));
            }
            Ok(if k < 1.0 { 0 } else { k as usize })
        };
        let ratio_at = |t: i64| -> Result<f64> {
            let r = param_at(t);
            if r.is_nan() {
                return Err(Error::Execution("Ratio value is NaN".into()));
            }
            Ok(r.clamp(-1.0, 1.0))
        };
        if per_step.is_none() {
            if self.kind == TopKKind::LimitRatio {
                ratio_at(0)?;
            } else {
                k_at(0)?;
            }
        }
        // `limitk` and `limit_ratio` keep native histograms; `topk` and `bottomk` are planned
        // over floats only.
        let limits = matches!(self.kind, TopKKind::Limit | TopKKind::LimitRatio);
        let (input, hists) = intern_samples(input, limits);
        let mut out = SeriesOut::with_histograms(self.histograms);
        // Each series' group, computed once; then (step, group) -> rows.
        let mut group_ids: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut key = Vec::new();
        let group_of: Vec<u32> = input
            .labels
            .iter()
            .map(|l| {
                self.grouping.key(l, &mut key);
                let n = group_ids.len() as u32;
                *group_ids.entry(key.clone()).or_insert(n)
            })
            .collect();
        // Each series' position in label order, computed once.
        let mut by_labels: Vec<u32> = (0..input.labels.len() as u32).collect();
        by_labels.sort_by(|a, b| input.labels[*a as usize].cmp(&input.labels[*b as usize]));
        let mut rank = vec![0u32; by_labels.len()];
        for (pos, s) in by_labels.iter().enumerate() {
            rank[*s as usize] = pos as u32;
        }
        let mut groups: HashMap<(i64, u32), Vec<(u32, f64)>> = HashMap::new();
        for (t, k, v) in &input.rows {
            groups
                .entry((*t, group_of[*k as usize]))
                .or_default()
                .push((*k, *v));
        }
        let mut order: Vec<(i64, u32)> = groups.keys().copied().collect();
        order.sort_unstable();
        for g in order {
            let mut rows = groups.remove(&g).unwrap_or_default();
            // Prometheus sees a selector's series in label order; so do we.
            rows.sort_by_key(|(k, _)| rank[*k as usize]);
            let kept = match self.kind {
                TopKKind::Top => go_heap_select(rows, k_at(g.0)?, |a, b| a.is_nan() || a < b),
                TopKKind::Bottom => go_heap_select(rows, k_at(g.0)?, |a, b| a.is_nan() || a > b),
                TopKKind::Limit => rows.into_iter().take(k_at(g.0)?).collect(),
                TopKKind::LimitRatio => {
                    let r = ratio_at(g.0)?;
                    rows.into_iter()
                        .filter(|(s, _)| in_ratio(&input.labels[*s as usize], r))
                        .collect()
                }
            };
            for (s, v) in kept {
                match hists.get(&(g.0, s)) {
                    Some(h) => out.push_hist(&input.labels[s as usize], g.0, h.to_vec())?,
                    None => out.push(&input.labels[s as usize], g.0, v),
                }
            }
        }
        out.finish()
    }
}

/// Selects k rows the way Prometheus's `topk`/`bottomk` do, with Go's `container/heap` and
/// the same `Less`, so that ties (and NaN) resolve to the same series: the heap keeps the k
/// best seen so far, its root the worst of them, replaced only by a strictly better row.
fn go_heap_select(
    rows: Vec<(u32, f64)>,
    k: usize,
    less: impl Fn(f64, f64) -> bool,
) -> Vec<(u32, f64)> {
    let mut h: Vec<(u32, f64)> = Vec::with_capacity(k.min(rows.len()));
    let lt = |h: &[(u32, f64)], i: usize, j: usize| less(h[i].1, h[j].1);
    let up = |h: &mut Vec<(u32, f64)>, mut j: usize| {
        while j > 0 {
            let i = (j - 1) / 2;
            if !lt(h, j, i) {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    };
    let down = |h: &mut Vec<(u32, f64)>, i0: usize| -> bool {
        let n = h.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && lt(h, j1 + 1, j1) {
                j = j1 + 1;
            }
            if !lt(h, j, i) {
                break;
            }
            h.swap(i, j);
            i = j;
        }
        i > i0
    };
    if k == 0 {
        return h;
    }
    for row in rows {
        if h.len() < k {
            h.push(row);
            let last = h.len() - 1;
            up(&mut h, last);
        } else if less(h[0].1, row.1) && !(h[0].1.is_nan() && row.1.is_nan()) {
            // `less(root, row)`: the root is worse than the row (NaN is worst).
            h[0] = row;
            if k > 1 && !down(&mut h, 0) {
                up(&mut h, 0);
            }
        }
    }
    h
}

/// Fails when two rows of one step carry the same label set (as `label_replace` can make).
pub(super) fn check_unique(input: &[RecordBatch], histograms: bool) -> Result<RecordBatch> {
    let mut seen: HashSet<(i64, Vec<u8>)> = HashSet::new();
    let mut dup = false;
    let mut out = VectorBuilder::with_histograms(histograms);
    for_each_vector_row(input, |l, t, v| {
        if !seen.insert((t, l.to_vec())) {
            dup = true;
        }
        out.push(l, t, v);
    });
    let mut result = Ok(());
    super::input::for_each_hist_row(input, |l, t, h| {
        if !seen.insert((t, l.to_vec())) {
            dup = true;
        }
        if result.is_ok() {
            result = out.push_hist(l, t, h);
        }
    });
    result?;
    if dup {
        return Err(Error::Execution(
            "vector cannot contain metrics with the same labelset".into(),
        ));
    }
    out.finish()
}

/// Whether `limit_ratio(r, …)` keeps the series with these labels, as Prometheus decides: its
/// label-set hash (xxhash64 of `name 0xFF value 0xFF …`, `labels.Hash()`) scaled to [0, 1]
/// is below `r`, or for a negative `r` at least `1 + r` (so `r` and `r - 1` split the series).
fn in_ratio(labels: &[u8], r: f64) -> bool {
    let mut bytes = Vec::with_capacity(labels.len() + 8);
    for (n, v) in crate::labelset::pairs(labels).filter(|(n, _)| *n != crate::labelset::DROP_NAME) {
        bytes.extend_from_slice(n.as_bytes());
        bytes.push(0xFF);
        bytes.extend_from_slice(v.as_bytes());
        bytes.push(0xFF);
    }
    let offset = twox_hash::XxHash64::oneshot(0, &bytes) as f64 / u64::MAX as f64;
    (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_uses_xxhash64_with_seed_zero_as_prometheus_does() {
        // xxhash64("") = 0xEF46DB3751D8E999 (the reference vector): 0.9347 of u64::MAX.
        assert!(!in_ratio(b"", 0.93));
        assert!(in_ratio(b"", 0.94));
        assert!(in_ratio(b"", -0.07));
        assert!(!in_ratio(b"", -0.06));
    }
}
