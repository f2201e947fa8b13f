//! Reading operator inputs and building operator outputs.

use foldhash::{HashMap, HashMapExt};

/// Label sets are long keys hashed once per row in places: foldhash, not SipHash.
pub type LabelMap<V> = HashMap<Vec<u8>, V>;
use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType, UInt64Type};

use super::{SeriesMap, hist_vector_schema, scalar_schema, vector_schema};
use crate::error::{Error, Result};

/// A `labels` column: views (as plan nodes build it) or plain binary (as an expression may).
pub enum LabelsCol<'a> {
    View(&'a BinaryViewArray),
    Plain(&'a BinaryArray),
}

impl<'a> LabelsCol<'a> {
    pub fn new(a: &'a ArrayRef) -> Self {
        match a.data_type() {
            DataType::Binary => LabelsCol::Plain(a.as_binary::<i32>()),
            _ => LabelsCol::View(a.as_binary_view()),
        }
    }

    pub fn value(&self, i: usize) -> &'a [u8] {
        match self {
            LabelsCol::View(a) => a.value(i),
            LabelsCol::Plain(a) => a.value(i),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            LabelsCol::View(a) => a.len(),
            LabelsCol::Plain(a) => a.len(),
        }
    }
}

/// Builds a `labels` column of views: each label set's bytes are stored once per run of rows
/// that repeat it (a series' steps), and every row of the run points at them — no copy per row.
#[derive(Default)]
pub struct LabelsBuilder {
    data: Vec<u8>,
    views: Vec<u128>,
    /// The last label set: its view and where its bytes are.
    last: Option<(u128, usize, usize)>,
}

impl LabelsBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        LabelsBuilder {
            views: Vec::with_capacity(rows),
            ..Default::default()
        }
    }

    pub fn append(&mut self, labels: &[u8]) {
        // (Comparing bytes, not addresses: callers reuse their buffers.)
        let view = match self.last {
            Some((view, start, len))
                if len == labels.len() && self.data[start..start + len] == *labels =>
            {
                view
            }
            _ => {
                let start = self.data.len();
                self.data.extend_from_slice(labels);
                let view = make_view(labels, 0, start as u32);
                self.last = Some((view, start, labels.len()));
                view
            }
        };
        self.views.push(view);
    }

    pub fn finish(self) -> BinaryViewArray {
        BinaryViewArray::new(
            ScalarBuffer::from(self.views),
            vec![Buffer::from_vec(self.data)],
            None,
        )
    }
}

/// Calls `f` with every float row of vector batches: (labels, step, value). Native histogram
/// rows are skipped (see [`for_each_hist_row`]): a kernel that reads values never takes a
/// histogram's placeholder 0 for a sample.
pub fn for_each_vector_row(batches: &[RecordBatch], mut f: impl FnMut(&[u8], i64, f64)) {
    for_each_sample(batches, |l, t, v| {
        if let Sample::Float(v) = v {
            f(l, t, v)
        }
    });
}

/// Calls `f` with every native histogram row of vector batches: (labels, step, encoded
/// histogram).
pub fn for_each_hist_row(batches: &[RecordBatch], mut f: impl FnMut(&[u8], i64, &[u8])) {
    for_each_sample(batches, |l, t, v| {
        if let Sample::Hist(h) = v {
            f(l, t, h)
        }
    });
}

/// A sample of an instant vector that may hold native histograms: a float, or a histogram's
/// encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample<'a> {
    Float(f64),
    Hist(&'a [u8]),
}

/// Calls `f` with every row of vector batches, floats and histograms in input order.
pub fn for_each_sample<'a>(
    batches: &'a [RecordBatch],
    mut f: impl FnMut(&'a [u8], i64, Sample<'a>),
) {
    for b in batches {
        let labels = LabelsCol::new(b.column(0));
        let ts = b.column(1).as_primitive::<Int64Type>();
        let vs = b.column(2).as_primitive::<Float64Type>();
        let hist = hist_column(b);
        for i in 0..b.num_rows() {
            let v = match hist {
                Some(h) if h.is_valid(i) => Sample::Hist(h.value(i)),
                _ => Sample::Float(vs.value(i)),
            };
            f(labels.value(i), ts.value(i), v);
        }
    }
}

/// A histogram of an operator's input, decoded.
pub fn decode_hist(bytes: &[u8]) -> Result<quiver_storage::FloatHistogram> {
    quiver_storage::FloatHistogram::decode(bytes)
        .map(|(h, _)| h)
        .map_err(|e| Error::Internal(format!("a native histogram: {e}")))
}

/// A vector batch's `hist` column, if it has one.
fn hist_column(b: &RecordBatch) -> Option<&BinaryViewArray> {
    let i = b.schema_ref().index_of("hist").ok()?;
    b.column(i).as_binary_view_opt()
}

/// Scalar batches as a map from step to value.
pub fn scalar_by_step(batches: &[RecordBatch]) -> HashMap<i64, f64> {
    let mut out = HashMap::new();
    for b in batches {
        let ts = b.column(0).as_primitive::<Int64Type>();
        let vs = b.column(1).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.insert(ts.value(i), vs.value(i));
        }
    }
    out
}

/// Vector rows with each distinct label set stored once: `rows` are (step, series, value)
/// with `series` an index into `labels`. Kernels compute per-series work (group keys,
/// bucket bounds) once per series instead of once per row.
#[derive(Debug, Default)]
pub struct InternedRows {
    pub labels: Vec<Vec<u8>>,
    pub rows: Vec<(i64, u32, f64)>,
}

pub fn intern_rows(batches: &[RecordBatch]) -> InternedRows {
    intern_samples(batches, false).0
}

/// [`intern_rows`] with native histograms too, when `histograms`: their rows hold 0 and the
/// map gives their encoded histogram by (step, series).
pub fn intern_samples(
    batches: &[RecordBatch],
    histograms: bool,
) -> (InternedRows, HashMap<(i64, u32), &[u8]>) {
    let mut out = InternedRows::default();
    let mut hists = HashMap::new();
    let mut index: LabelMap<u32> = LabelMap::default();
    let mut last: Option<(Vec<u8>, u32)> = None;
    for_each_sample(batches, |l, t, v| {
        let (v, hist) = match v {
            Sample::Float(f) => (f, None),
            Sample::Hist(_) if !histograms => return,
            Sample::Hist(h) => (0.0, Some(h)),
        };
        let k = match &last {
            Some((raw, k)) if raw.as_slice() == l => *k,
            _ => {
                let k = *index.entry(l.to_vec()).or_insert_with(|| {
                    out.labels.push(l.to_vec());
                    (out.labels.len() - 1) as u32
                });
                last = Some((l.to_vec(), k));
                k
            }
        };
        if let Some(h) = hist {
            hists.insert((t, k), h);
        }
        out.rows.push((t, k, v));
    });
    (out, hists)
}

/// One series' samples, sorted by time; its labels borrowed from the selector's map.
#[derive(Debug, Default)]
pub struct SeriesData<'a> {
    pub labels: Cow<'a, [u8]>,
    pub ts: Vec<i64>,
    pub values: Vec<f64>,
    /// With native histograms in the input: per sample, its encoded histogram (`None` for a
    /// float sample; `values` holds 0 there). Empty when the input has no histogram column.
    pub hists: Vec<Option<&'a [u8]>>,
}

impl<'a> SeriesData<'a> {
    /// The histogram of sample `i`, if it is one.
    pub fn hist(&self, i: usize) -> Option<&'a [u8]> {
        self.hists.get(i).copied().flatten()
    }

    /// Keeps the samples `keep` says (in every column).
    pub fn retain(&mut self, keep: &[bool]) {
        let mut k = keep.iter();
        self.ts.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.values.retain(|_| *k.next().unwrap_or(&false));
        if !self.hists.is_empty() {
            let mut k = keep.iter();
            self.hists.retain(|_| *k.next().unwrap_or(&false));
        }
    }

    /// The samples' weight against `--query.max-samples`: a float counts 1, a histogram its
    /// size in 16-byte units (as `quiver_storage::provider::histogram_weight`).
    pub fn weight(&self) -> usize {
        self.ts.len()
            + self
                .hists
                .iter()
                .flatten()
                .map(|h| (h.len() + 119) / 16 - 1)
                .sum::<usize>()
    }

    /// Whether sample `i` is a float staleness marker.
    pub fn is_stale(&self, i: usize) -> bool {
        self.hist(i).is_none() && quiver_storage::is_stale_nan(self.values[i])
    }
}

/// Groups input rows into series: storage samples (`series_id`, `timestamp`, `value`, labels
/// from `map`) or a vector (`labels`, `ts`, `value`, as a subquery yields).
pub fn group_series<'a>(
    batches: &'a [RecordBatch],
    map: Option<&'a SeriesMap>,
) -> Result<Vec<SeriesData<'a>>> {
    let mut out: Vec<SeriesData> = Vec::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let schema = first.schema();
    if let (Ok(id_col), Some(map)) = (schema.index_of("series_id"), map) {
        let t_col = schema
            .index_of("timestamp")
            .map_err(|e| Error::Internal(e.to_string()))?;
        let v_col = schema
            .index_of("value")
            .map_err(|e| Error::Internal(e.to_string()))?;
        let h_col = schema.index_of("histogram").ok();
        let mut pos: HashMap<u64, usize> = HashMap::new();
        for b in batches {
            let ids = b.column(id_col).as_primitive::<UInt64Type>().values();
            let ts = b.column(t_col).as_primitive::<TimestampMillisecondType>();
            let vs = b.column(v_col).as_primitive::<Float64Type>();
            let hs = h_col.map(|c| b.column(c).as_binary_view());
            // Each series' rows are contiguous: copy them a run at a time.
            let mut start = 0;
            while start < ids.len() {
                let id = ids[start];
                let end = start + ids[start..].iter().take_while(|x| **x == id).count();
                let k = *pos.entry(id).or_insert_with(|| {
                    out.push(SeriesData {
                        labels: Cow::Borrowed(map.labels(id).unwrap_or_default()),
                        ..Default::default()
                    });
                    out.len() - 1
                });
                let s = &mut out[k];
                s.ts.extend_from_slice(&ts.values()[start..end]);
                if vs.null_count() == 0 {
                    s.values.extend_from_slice(&vs.values()[start..end]);
                } else {
                    s.values.extend(
                        (start..end).map(|i| if vs.is_null(i) { f64::NAN } else { vs.value(i) }),
                    );
                }
                if let Some(hs) = hs {
                    s.hists
                        .extend((start..end).map(|i| hs.is_valid(i).then(|| hs.value(i))));
                }
                start = end;
            }
        }
    } else {
        // A subquery's points: with native histograms, each sample says which it is.
        let histograms = schema.index_of("hist").is_ok();
        let mut pos: LabelMap<usize> = LabelMap::default();
        for_each_sample(batches, |labels, t, v| {
            let k = match pos.get(labels) {
                Some(k) => *k,
                None => {
                    out.push(SeriesData {
                        labels: Cow::Owned(labels.to_vec()),
                        ..Default::default()
                    });
                    pos.insert(labels.to_vec(), out.len() - 1);
                    out.len() - 1
                }
            };
            out[k].ts.push(t);
            match v {
                Sample::Float(f) => {
                    out[k].values.push(f);
                    if histograms {
                        out[k].hists.push(None);
                    }
                }
                Sample::Hist(h) => {
                    out[k].values.push(0.0);
                    out[k].hists.push(Some(h));
                }
            }
        });
    }
    for s in &mut out {
        if !s.ts.is_sorted() {
            let mut idx: Vec<usize> = (0..s.ts.len()).collect();
            idx.sort_by_key(|i| s.ts[*i]);
            s.ts = idx.iter().map(|i| s.ts[*i]).collect();
            s.values = idx.iter().map(|i| s.values[*i]).collect();
            if !s.hists.is_empty() {
                s.hists = idx.iter().map(|i| s.hists[*i]).collect();
            }
        }
    }
    Ok(out)
}

/// Builds a vector batch (with a `hist` column when made [`VectorBuilder::with_histograms`]).
#[derive(Default)]
pub struct VectorBuilder {
    labels: LabelsBuilder,
    ts: Vec<i64>,
    values: Vec<f64>,
    hists: Option<datafusion::arrow::array::BinaryViewBuilder>,
}

impl VectorBuilder {
    /// A builder of the [`hist_vector_schema`] when `histograms`, else of the plain one.
    pub fn with_histograms(histograms: bool) -> Self {
        VectorBuilder {
            hists: histograms.then(datafusion::arrow::array::BinaryViewBuilder::new),
            ..Default::default()
        }
    }

    pub fn push(&mut self, labels: &[u8], t: i64, v: f64) {
        self.labels.append(labels);
        self.ts.push(t);
        self.values.push(v);
        if let Some(h) = &mut self.hists {
            h.append_null();
        }
    }

    /// A histogram sample (its encoded bytes); the builder must have been made for them.
    pub fn push_hist(&mut self, labels: &[u8], t: i64, h: &[u8]) -> Result<()> {
        let Some(hists) = &mut self.hists else {
            return Err(Error::Internal(
                "a native histogram reached an operator planned for floats".into(),
            ));
        };
        hists.append_value(h);
        self.labels.append(labels);
        self.ts.push(t);
        self.values.push(0.0);
        Ok(())
    }

    pub fn finish(self) -> Result<RecordBatch> {
        let mut columns = vec![
            Arc::new(self.labels.finish()) as ArrayRef,
            Arc::new(Int64Array::from(self.ts)),
            Arc::new(Float64Array::from(self.values)),
        ];
        let schema = match self.hists {
            Some(mut h) => {
                columns.push(Arc::new(h.finish()));
                hist_vector_schema()
            }
            None => vector_schema(),
        };
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
    }
}

/// Builds a vector batch from rows that arrive step by step (each step visiting many series),
/// writing them out series by series, so each series' label bytes are stored once. Made
/// [`SeriesOut::with_histograms`], it takes native histograms too.
#[derive(Default)]
pub struct SeriesOut {
    ids: LabelMap<u32>,
    labels: Vec<Vec<u8>>,
    /// (series, step, value, histogram: an index into `hists`).
    rows: Vec<(u32, i64, f64, Option<u32>)>,
    hists: Option<Vec<Vec<u8>>>,
}

impl SeriesOut {
    /// A builder of the [`hist_vector_schema`] when `histograms`, else of the plain one.
    pub fn with_histograms(histograms: bool) -> Self {
        SeriesOut {
            hists: histograms.then(Vec::new),
            ..Default::default()
        }
    }

    fn id(&mut self, labels: &[u8]) -> u32 {
        match self.ids.get(labels) {
            Some(id) => *id,
            None => {
                let id = self.labels.len() as u32;
                self.ids.insert(labels.to_vec(), id);
                self.labels.push(labels.to_vec());
                id
            }
        }
    }

    pub fn push(&mut self, labels: &[u8], t: i64, v: f64) {
        let id = self.id(labels);
        self.rows.push((id, t, v, None));
    }

    /// A histogram sample (its encoded bytes); the builder must have been made for them.
    pub fn push_hist(&mut self, labels: &[u8], t: i64, h: Vec<u8>) -> Result<()> {
        let id = self.id(labels);
        let Some(hists) = &mut self.hists else {
            return Err(Error::Internal(
                "a native histogram reached an operator planned for floats".into(),
            ));
        };
        hists.push(h);
        let k = (hists.len() - 1) as u32;
        self.rows.push((id, t, 0.0, Some(k)));
        Ok(())
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        // Stable: each series keeps its rows in the order they came (by step).
        self.rows.sort_by_key(|r| r.0);
        let mut out = VectorBuilder::with_histograms(self.hists.is_some());
        let hists = self.hists.unwrap_or_default();
        for (id, t, v, h) in self.rows {
            let labels = &self.labels[id as usize];
            match h {
                Some(k) => out.push_hist(labels, t, &hists[k as usize])?,
                None => out.push(labels, t, v),
            }
        }
        out.finish()
    }
}

/// Builds a scalar batch from one value per step.
pub fn scalar_batch(steps: &super::Steps, values: Vec<f64>) -> Result<RecordBatch> {
    RecordBatch::try_new(
        scalar_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(steps.iter())) as ArrayRef,
            Arc::new(Float64Array::from(values)),
        ],
    )
    .map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_builder_stores_a_run_once_and_keeps_reused_buffers_apart() {
        let mut b = LabelsBuilder::default();
        let mut buf = b"job\xFFapi-server-with-a-long-name\xFE".to_vec();
        b.append(&buf);
        b.append(&buf);
        // The caller rewrites its buffer in place: same address and length, other bytes.
        buf.copy_from_slice(b"job\xFFweb-server-with-a-long-name\xFE");
        b.append(&buf);
        let a = b.finish();
        assert_eq!(a.value(0), a.value(1));
        assert_eq!(a.value(2), buf.as_slice());
        assert_eq!(
            a.data_buffers()[0].len(),
            2 * buf.len(),
            "each run's bytes stored once"
        );
    }

    #[test]
    fn series_out_groups_interleaved_rows_by_series_in_step_order() {
        let mut out = SeriesOut::default();
        for t in [1, 2] {
            out.push(b"a\xFF1\xFE", t, t as f64);
            out.push(b"a\xFF2\xFE", t, 10.0 * t as f64);
        }
        let mut rows = Vec::new();
        for_each_vector_row(&[out.finish().unwrap()], |l, t, v| {
            rows.push((l.to_vec(), t, v))
        });
        assert_eq!(
            rows,
            vec![
                (b"a\xFF1\xFE".to_vec(), 1, 1.0),
                (b"a\xFF1\xFE".to_vec(), 2, 2.0),
                (b"a\xFF2\xFE".to_vec(), 1, 10.0),
                (b"a\xFF2\xFE".to_vec(), 2, 20.0),
            ]
        );
    }
}
