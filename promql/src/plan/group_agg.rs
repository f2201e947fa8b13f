//! Aggregations fused into the node that produces their input (`agg by (…) (selector)`,
//! `agg by (…) (range_fn(…))`): results gather per group and step as each series is
//! evaluated, instead of a row per series and step going to a hash aggregate.
//!
//! Series come in label order, as Prometheus feeds its aggregations, and each group and step
//! sees its values in that order: the arithmetic is [`AggKind`]'s, the same as the general
//! path's, so the results are the same.

use datafusion::arrow::array::RecordBatch;
use foldhash::{HashMap, HashMapExt};
use quiver_storage::FloatHistogram;

use super::Steps;
use super::input::VectorBuilder;
use crate::error::Result;
use crate::functions::aggregate::AggKind;
use crate::functions::kahan_inc;
use crate::functions::native::HistSum;
use crate::labelset::Grouping;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamAgg {
    pub kind: AggKind,
    pub grouping: Grouping,
}

impl StreamAgg {
    /// Whether it yields native histograms from native histograms (`sum`, `avg`).
    pub fn sums(&self) -> bool {
        matches!(self.kind, AggKind::Sum | AggKind::Avg)
    }

    /// Whether the kind folds as values arrive (else each cell keeps its values to the end).
    fn accumulates(&self) -> bool {
        matches!(
            self.kind,
            AggKind::Sum | AggKind::Min | AggKind::Max | AggKind::Count | AggKind::Group
        )
    }
}

/// One (group, step) cell of an accumulating aggregation.
#[derive(Clone, Copy, Default)]
struct Cell {
    value: f64,
    comp: f64,
    count: u32,
}

impl Cell {
    fn add(&mut self, kind: AggKind, v: f64) {
        match kind {
            AggKind::Sum => (self.value, self.comp) = kahan_inc(v, self.value, self.comp),
            // As Prometheus: the first value, then any better one; NaN only if all are NaN.
            AggKind::Min if self.count == 0 || self.value > v || self.value.is_nan() => {
                self.value = v;
            }
            AggKind::Max if self.count == 0 || self.value < v || self.value.is_nan() => {
                self.value = v;
            }
            _ => {}
        }
        self.count += 1;
    }

    fn result(&self, kind: AggKind) -> f64 {
        match kind {
            AggKind::Sum => self.value + self.comp,
            AggKind::Min | AggKind::Max => self.value,
            AggKind::Count => self.count as f64,
            _ => 1.0,
        }
    }
}

/// Values per (group, step) cell.
enum Cells {
    /// Folded as they arrive, in a dense grid of every group and step.
    Folded(Vec<Cell>),
    /// Folded as they arrive, only the cells that have values: when the dense grid could be
    /// large and mostly empty (many short-lived series over a long range).
    Sparse(HashMap<usize, Cell>),
    /// Kept (cell, value) in arrival order, folded at the end (`avg`, `stddev`, `quantile`…).
    Kept(Vec<(usize, f64)>),
}

/// The most cells a dense grid may have (24 bytes each) before cells are kept sparsely.
const MAX_DENSE_CELLS: usize = 1 << 20;

/// Gathers a fused aggregation's values: [`GroupSink::begin`] each series (in label order),
/// then [`GroupSink::push`] its value at each step.
pub struct GroupSink<'a> {
    agg: &'a StreamAgg,
    steps: usize,
    keys: HashMap<Vec<u8>, usize>,
    labels: Vec<Vec<u8>>,
    cells: Cells,
    /// Native histogram cells (`sum`, `avg`), by cell index.
    hists: HashMap<usize, HistSum>,
    key: Vec<u8>,
    /// The group of the series being evaluated.
    current: usize,
    /// Whether the output may hold histograms (the node's schema says so).
    histograms: bool,
}

impl<'a> GroupSink<'a> {
    /// A sink for at most `series` series over `steps` steps.
    pub fn new(agg: &'a StreamAgg, steps: usize, series: usize) -> Self {
        GroupSink {
            agg,
            steps,
            keys: HashMap::new(),
            labels: Vec::new(),
            cells: if !agg.accumulates() {
                Cells::Kept(Vec::new())
            } else if series.saturating_mul(steps) <= MAX_DENSE_CELLS {
                Cells::Folded(Vec::new())
            } else {
                Cells::Sparse(HashMap::new())
            },
            hists: HashMap::new(),
            key: Vec::new(),
            current: 0,
            histograms: false,
        }
    }

    /// A sink whose output has the histogram column (its input may hold histograms).
    pub fn with_histograms(mut self, histograms: bool) -> Self {
        self.histograms = histograms;
        self
    }

    /// The current series' native histogram at step `step_index`: summed by `sum` and `avg`,
    /// counted by `count` and `group`, and left out by the aggregations of values (`min`,
    /// `max`, `stddev`, `stdvar`, `quantile`), as Prometheus does.
    pub fn push_hist(&mut self, step_index: usize, h: &FloatHistogram) {
        match self.agg.kind {
            AggKind::Count | AggKind::Group => self.push(step_index, 0.0),
            AggKind::Sum | AggKind::Avg => {
                let cell = self.current * self.steps + step_index;
                match self.hists.get_mut(&cell) {
                    None => {
                        self.hists.insert(cell, HistSum::new(h.clone()));
                    }
                    Some(c) => c.add(h, self.agg.kind == AggKind::Avg),
                }
            }
            _ => {}
        }
    }

    /// Starts a series with these labels.
    pub fn begin(&mut self, labels: &[u8]) {
        self.key.clear();
        self.agg.grouping.key(labels, &mut self.key);
        if let Some(g) = self.keys.get(&self.key) {
            self.current = *g;
            return;
        }
        let g = self.labels.len();
        self.keys.insert(self.key.clone(), g);
        self.labels.push(self.key.clone());
        if let Cells::Folded(cells) = &mut self.cells {
            cells.extend(std::iter::repeat_n(Cell::default(), self.steps));
        }
        self.current = g;
    }

    /// The current series' value at step `step_index`.
    pub fn push(&mut self, step_index: usize, v: f64) {
        let cell = self.current * self.steps + step_index;
        match &mut self.cells {
            Cells::Folded(cells) => cells[cell].add(self.agg.kind, v),
            Cells::Sparse(cells) => cells.entry(cell).or_default().add(self.agg.kind, v),
            Cells::Kept(values) => values.push((cell, v)),
        }
    }

    /// One row per group and step that had a value.
    pub fn finish(mut self, grid: &Steps) -> Result<RecordBatch> {
        let mut out = VectorBuilder::with_histograms(self.histograms);
        let times: Vec<i64> = grid.iter().collect();
        let kind = self.agg.kind;
        let hists = std::mem::take(&mut self.hists);
        // Cells in order: by group, then step.
        let mut emit = |cell: usize, v: f64| {
            let (g, k) = (cell / self.steps, cell % self.steps);
            out.push(&self.labels[g], times[k], v);
        };
        match std::mem::replace(&mut self.cells, Cells::Kept(Vec::new())) {
            Cells::Folded(cells) => {
                for (cell, c) in cells.iter().enumerate().filter(|(_, c)| c.count > 0) {
                    emit(cell, c.result(kind));
                }
            }
            Cells::Sparse(cells) => {
                let mut cells: Vec<(usize, Cell)> = cells.into_iter().collect();
                cells.sort_unstable_by_key(|(c, _)| *c);
                for (cell, c) in cells {
                    emit(cell, c.result(kind));
                }
            }
            Cells::Kept(mut values) => {
                // Stable: each cell keeps its values in arrival (label) order.
                values.sort_by_key(|(c, _)| *c);
                let mut buf = Vec::new();
                for run in values.chunk_by(|a, b| a.0 == b.0) {
                    buf.clear();
                    buf.extend(run.iter().map(|(_, v)| *v));
                    emit(run[0].0, kind.fold(&mut buf));
                }
            }
        }
        let mut floats = out.finish()?;
        if !hists.is_empty() {
            floats = self.append_histograms(floats, hists, &times, kind)?;
        }
        Ok(floats)
    }

    /// The float rows and, after them, one histogram row per histogram cell (Prometheus's
    /// `sum` and `avg` of histograms, [`HistSum::result`]). A cell with both floats and histograms gives nothing: Prometheus cannot
    /// aggregate them together (and warns).
    fn append_histograms(
        &self,
        floats: RecordBatch,
        hists: HashMap<usize, HistSum>,
        times: &[i64],
        kind: AggKind,
    ) -> Result<RecordBatch> {
        use super::input::for_each_vector_row;
        let key = |cell: usize| {
            (
                self.labels[cell / self.steps].clone(),
                times[cell % self.steps],
            )
        };
        let hist_cells: foldhash::HashSet<(Vec<u8>, i64)> = hists.keys().map(|c| key(*c)).collect();
        let mut mixed: foldhash::HashSet<(Vec<u8>, i64)> = foldhash::HashSet::default();
        let mut out = VectorBuilder::with_histograms(true);
        for_each_vector_row(std::slice::from_ref(&floats), |l, t, v| {
            let k = (l.to_vec(), t);
            if hist_cells.contains(&k) {
                mixed.insert(k);
            } else {
                out.push(l, t, v);
            }
        });
        let mut cells: Vec<(usize, HistSum)> = hists.into_iter().collect();
        cells.sort_unstable_by_key(|(c, _)| *c);
        let mut buf = Vec::new();
        for (cell, c) in cells {
            let (labels, t) = key(cell);
            if mixed.contains(&(labels.clone(), t)) {
                continue;
            }
            let Some(h) = c.result(kind == AggKind::Avg) else {
                continue;
            };
            buf.clear();
            h.encode(&mut buf);
            out.push_hist(&labels, t, &buf)?;
        }
        out.finish()
    }
}

/// `sum` and `avg` over an instant vector that may hold native histograms, where the
/// aggregation cannot be fused into its input (`sum(a + b)`, `sum by (__name__) (…)`): the
/// input's series, in label order, go through a [`GroupSink`] as a fused aggregation's do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistAggregateOp {
    pub agg: StreamAgg,
    pub steps: Steps,
}

impl HistAggregateOp {
    pub(super) fn evaluate(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        use super::input::{Sample, decode_hist, for_each_sample};
        let mut series: std::collections::BTreeMap<&[u8], Vec<(i64, Sample<'_>)>> =
            Default::default();
        for_each_sample(input, |l, t, v| series.entry(l).or_default().push((t, v)));
        let mut sink =
            GroupSink::new(&self.agg, self.steps.len(), series.len()).with_histograms(true);
        // `by (__name__)`: a group's name goes at the end if any of its series drops it (as
        // the general path's `drop_mark`).
        let keeps_name = self.agg.grouping.keeps_name();
        let mut marked: foldhash::HashSet<Vec<u8>> = Default::default();
        let mut key = Vec::new();
        for (labels, rows) in series {
            sink.begin(labels);
            if keeps_name && crate::labelset::has_drop_mark(labels) {
                key.clear();
                self.agg.grouping.key(labels, &mut key);
                marked.insert(key.clone());
            }
            for (t, v) in rows {
                let Some(i) = self.steps.index(t) else {
                    continue;
                };
                match v {
                    Sample::Float(f) => sink.push(i, f),
                    Sample::Hist(h) => sink.push_hist(i, &decode_hist(h)?),
                }
            }
        }
        let out = sink.finish(&self.steps)?;
        if marked.is_empty() {
            return Ok(out);
        }
        let mut relabeled = VectorBuilder::with_histograms(true);
        let mut result = Ok(());
        for_each_sample(std::slice::from_ref(&out), |l, t, v| {
            let labels = if marked.contains(l) {
                std::borrow::Cow::Owned(crate::labelset::mark_drop_name(l))
            } else {
                std::borrow::Cow::Borrowed(l)
            };
            match v {
                Sample::Float(f) => relabeled.push(&labels, t, f),
                Sample::Hist(h) => {
                    if result.is_ok() {
                        result = relabeled.push_hist(&labels, t, h);
                    }
                }
            }
        });
        result?;
        relabeled.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labelset::encode;
    use crate::plan::Param;
    use crate::plan::input::for_each_vector_row;

    /// A series' labels and its value at each step, if any.
    type Input<'a> = (&'a [(&'a str, &'a str)], &'a [Option<f64>]);

    fn run(kind: AggKind, series: &[Input<'_>]) -> Vec<(Vec<u8>, i64, f64)> {
        let dense = run_with(kind, series, series.len());
        let sparse = run_with(kind, series, MAX_DENSE_CELLS);
        let bits = |rows: &[(Vec<u8>, i64, f64)]| -> Vec<(Vec<u8>, i64, u64)> {
            rows.iter()
                .map(|(l, t, v)| (l.clone(), *t, v.to_bits()))
                .collect()
        };
        assert_eq!(bits(&dense), bits(&sparse), "dense and sparse cells agree");
        dense
    }

    fn run_with(kind: AggKind, series: &[Input<'_>], hint: usize) -> Vec<(Vec<u8>, i64, f64)> {
        let agg = StreamAgg {
            kind,
            grouping: Grouping::By(vec!["host".into()]),
        };
        let grid = Steps {
            start: 1000,
            end: 2000,
            step: 1000,
        };
        let mut sink = GroupSink::new(&agg, grid.len(), hint);
        for (labels, values) in series {
            sink.begin(&encode(labels.iter().copied()));
            for (k, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    sink.push(k, *v);
                }
            }
        }
        let mut rows = Vec::new();
        for_each_vector_row(&[sink.finish(&grid).unwrap()], |l, t, v| {
            rows.push((l.to_vec(), t, v))
        });
        rows
    }

    /// The `avg` of these histograms as one cell folds them.
    fn avg_of(hs: &[FloatHistogram]) -> FloatHistogram {
        let mut c = HistSum::new(hs[0].clone());
        for h in &hs[1..] {
            c.add(h, true);
        }
        c.result(true).unwrap()
    }

    fn hist(count: f64, sum: f64) -> FloatHistogram {
        FloatHistogram {
            count,
            sum,
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn avg_of_histograms_divides_their_sum() {
        let got = avg_of(&[hist(2.0, 1.0), hist(4.0, 2.0), hist(9.0, 3.0)]);
        assert_eq!((got.count, got.sum), (5.0, 2.0));
    }

    #[test]
    fn avg_of_histograms_switches_to_an_incremental_mean_before_overflowing() {
        // Regression: counts of 1.7e308 and 1e308 summed to +Inf, and so was their mean
        // (upstream native_histograms.test, avg(histogram_avg_incremental)).
        let got = avg_of(&[hist(1.7e308, 3.0), hist(1e308, 6.0), hist(3.0, 9.0)]);
        let want = 1.7e308 / 3.0 + 1e308 / 3.0 + 1.0;
        assert!(
            (got.count - want).abs() / want < 1e-12,
            "count {} instead of {want}",
            got.count
        );
        assert!((got.sum - 6.0).abs() < 1e-12, "sum {}", got.sum);
    }

    #[test]
    fn groups_fold_their_values_per_step_and_skip_empty_cells() {
        let a = [("__name__", "m"), ("gpu", "0"), ("host", "a")];
        let b = [("__name__", "m"), ("gpu", "1"), ("host", "a")];
        let c = [("__name__", "m"), ("gpu", "0"), ("host", "b")];
        let input: [Input<'_>; 3] = [
            (&a, &[Some(1.0), Some(4.0)]),
            (&b, &[Some(3.0), None]),
            (&c, &[None, Some(5.0)]),
        ];
        let host = |h| encode([("host", h)]);
        assert_eq!(
            run(AggKind::Avg, &input),
            vec![
                (host("a"), 1000, 2.0),
                (host("a"), 2000, 4.0),
                (host("b"), 2000, 5.0)
            ]
        );
        assert_eq!(
            run(AggKind::Sum, &input),
            vec![
                (host("a"), 1000, 4.0),
                (host("a"), 2000, 4.0),
                (host("b"), 2000, 5.0)
            ]
        );
        assert_eq!(
            run(AggKind::Quantile(Param(1.0)), &input),
            vec![
                (host("a"), 1000, 3.0),
                (host("a"), 2000, 4.0),
                (host("b"), 2000, 5.0)
            ]
        );
        // NaN wins min and max only when every value is NaN, dense or sparse.
        let d = [("__name__", "m"), ("gpu", "2"), ("host", "a")];
        let with_nan: [Input<'_>; 3] = [
            (&d, &[Some(f64::NAN), Some(f64::NAN)]),
            (&a, &[Some(1.0), None]),
            (&b, &[Some(3.0), None]),
        ];
        assert_eq!(run(AggKind::Min, &with_nan)[0], (host("a"), 1000, 1.0));
        assert_eq!(run(AggKind::Max, &with_nan)[0], (host("a"), 1000, 3.0));
        assert!(run(AggKind::Max, &with_nan)[1].2.is_nan());
        let counts = run(AggKind::Count, &input);
        assert_eq!(
            counts.iter().map(|r| r.2).collect::<Vec<_>>(),
            [2.0, 1.0, 1.0]
        );
    }
}
