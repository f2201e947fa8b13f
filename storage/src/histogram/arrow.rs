//! The Arrow form of native histograms: a histogram's fields as columns (`counter_reset_hint`,
//! `schema`, `zero_threshold`, `zero_count`, `count`, `sum`, then the spans and buckets of each
//! side and the custom bounds as lists), so DuckDB, pandas and SQL read them without Quiver's
//! encoding. Block files (`histograms.parquet`) hold them as top-level columns, SQL's
//! `histograms` table as the fields of one struct column.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int32Builder, ListArray, ListBuilder, StringBuilder,
    StructArray, StructBuilder, UInt32Builder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float64Type, Int32Type, UInt32Type};

use super::{CounterResetHint, FloatHistogram, Span, check_spans};

/// The type of a spans column: a list of `{offset: int32, length: uint32}`.
pub fn spans_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(span_fields()),
        false,
    )))
}

fn span_fields() -> Fields {
    Fields::from(vec![
        Field::new("offset", DataType::Int32, false),
        Field::new("length", DataType::UInt32, false),
    ])
}

/// The type of a bucket-count or bound column: a list of doubles.
pub fn floats_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float64, false)))
}

/// A histogram's fields, in the order of [`HistogramBuilder::finish`]'s columns.
pub fn histogram_fields() -> Fields {
    Fields::from(vec![
        Field::new("counter_reset_hint", DataType::Utf8, false),
        Field::new("schema", DataType::Int32, false),
        Field::new("zero_threshold", DataType::Float64, false),
        Field::new("zero_count", DataType::Float64, false),
        Field::new("count", DataType::Float64, false),
        Field::new("sum", DataType::Float64, false),
        Field::new("positive_spans", spans_type(), false),
        Field::new("positive_buckets", floats_type(), false),
        Field::new("negative_spans", spans_type(), false),
        Field::new("negative_buckets", floats_type(), false),
        Field::new("custom_values", floats_type(), false),
    ])
}

/// The type of SQL's `histogram` column: a struct of [`histogram_fields`].
pub fn histogram_struct_type() -> DataType {
    DataType::Struct(histogram_fields())
}

/// Builds the columns of [`histogram_fields`], a histogram per row.
pub struct HistogramBuilder {
    rows: usize,
    hint: StringBuilder,
    schema: Int32Builder,
    scalars: [Float64Builder; 4],
    pos_spans: ListBuilder<StructBuilder>,
    pos_buckets: ListBuilder<Float64Builder>,
    neg_spans: ListBuilder<StructBuilder>,
    neg_buckets: ListBuilder<Float64Builder>,
    custom: ListBuilder<Float64Builder>,
}

impl Default for HistogramBuilder {
    fn default() -> Self {
        HistogramBuilder {
            rows: 0,
            hint: StringBuilder::new(),
            schema: Int32Builder::new(),
            scalars: std::array::from_fn(|_| Float64Builder::new()),
            pos_spans: spans_builder(),
            pos_buckets: floats_builder(),
            neg_spans: spans_builder(),
            neg_buckets: floats_builder(),
            custom: floats_builder(),
        }
    }
}

impl HistogramBuilder {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, h: &FloatHistogram) {
        self.rows += 1;
        self.hint.append_value(h.hint.name());
        self.schema.append_value(h.schema);
        for (b, v) in self
            .scalars
            .iter_mut()
            .zip([h.zero_threshold, h.zero_count, h.count, h.sum])
        {
            b.append_value(v);
        }
        push_spans(&mut self.pos_spans, &h.positive_spans);
        push_floats(&mut self.pos_buckets, &h.positive_buckets);
        push_spans(&mut self.neg_spans, &h.negative_spans);
        push_floats(&mut self.neg_buckets, &h.negative_buckets);
        push_floats(&mut self.custom, &h.custom_values);
    }

    /// The columns of [`histogram_fields`].
    pub fn finish(mut self) -> Vec<ArrayRef> {
        let [zt, zc, c, sum] = self.scalars.each_mut().map(|b| b.finish());
        vec![
            Arc::new(self.hint.finish()) as ArrayRef,
            Arc::new(self.schema.finish()),
            Arc::new(zt),
            Arc::new(zc),
            Arc::new(c),
            Arc::new(sum),
            Arc::new(self.pos_spans.finish()),
            Arc::new(self.pos_buckets.finish()),
            Arc::new(self.neg_spans.finish()),
            Arc::new(self.neg_buckets.finish()),
            Arc::new(self.custom.finish()),
        ]
    }

    /// One struct column (SQL's `histogram`), with the rows `nulls` marks null (whatever was
    /// pushed for them is hidden).
    pub fn finish_struct(self, nulls: Option<NullBuffer>) -> StructArray {
        StructArray::new(histogram_fields(), self.finish(), nulls)
    }
}

fn spans_builder() -> ListBuilder<StructBuilder> {
    let item = Field::new("item", DataType::Struct(span_fields()), false);
    ListBuilder::new(StructBuilder::new(
        span_fields(),
        vec![
            Box::new(Int32Builder::new()),
            Box::new(UInt32Builder::new()),
        ],
    ))
    .with_field(Arc::new(item))
}

fn floats_builder() -> ListBuilder<Float64Builder> {
    ListBuilder::new(Float64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float64,
        false,
    )))
}

fn push_spans(b: &mut ListBuilder<StructBuilder>, spans: &[Span]) {
    let st = b.values();
    for s in spans {
        st.field_builder::<Int32Builder>(0)
            .expect("offset")
            .append_value(s.offset);
        st.field_builder::<UInt32Builder>(1)
            .expect("length")
            .append_value(s.length);
        st.append(true);
    }
    b.append(true);
}

fn push_floats(b: &mut ListBuilder<Float64Builder>, fs: &[f64]) {
    b.values().append_slice(fs);
    b.append(true);
}

/// Reads the histograms of columns laid out as [`histogram_fields`]: `f` gets each row's index
/// and its histogram, `None` where `nulls` says the row is null. Types, hints and spans are
/// checked (a file or a struct built elsewhere may be damaged); the error says what is wrong.
pub fn decode_columns(
    cols: &[ArrayRef],
    nulls: Option<&NullBuffer>,
    mut f: impl FnMut(usize, Option<FloatHistogram>),
) -> Result<(), String> {
    if cols.len() != 11 {
        return Err(format!("{} histogram columns, not 11", cols.len()));
    }
    let prim = |i: usize| cols[i].as_ref();
    let hint = prim(0)
        .as_string_opt::<i32>()
        .ok_or("counter_reset_hint type")?;
    let schema = prim(1)
        .as_primitive_opt::<Int32Type>()
        .ok_or("schema type")?;
    let float = |i: usize| {
        prim(i)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| format!("column {i} type"))
    };
    let (zt, zc, count, sum) = (float(2)?, float(3)?, float(4)?, float(5)?);
    let list = |i: usize| -> Result<&ListArray, String> {
        prim(i)
            .as_list_opt::<i32>()
            .ok_or_else(|| format!("column {i} type"))
    };
    let (ps, pb, ns, nb, cv) = (list(6)?, list(7)?, list(8)?, list(9)?, list(10)?);
    for row in 0..cols[0].len() {
        if nulls.is_some_and(|n| n.is_null(row)) {
            f(row, None);
            continue;
        }
        let hint = match hint.value(row) {
            "unknown" => CounterResetHint::Unknown,
            "reset" => CounterResetHint::Reset,
            "not_reset" => CounterResetHint::NotReset,
            "gauge" => CounterResetHint::Gauge,
            other => return Err(format!("unknown counter_reset_hint {other:?}")),
        };
        let h = FloatHistogram {
            hint,
            schema: schema.value(row),
            zero_threshold: zt.value(row),
            zero_count: zc.value(row),
            count: count.value(row),
            sum: sum.value(row),
            positive_spans: spans_at(ps, row)?,
            positive_buckets: floats_at(pb, row)?,
            negative_spans: spans_at(ns, row)?,
            negative_buckets: floats_at(nb, row)?,
            custom_values: floats_at(cv, row)?,
        };
        check_spans(&h.positive_spans, h.positive_buckets.len(), "positive side")
            .and_then(|_| check_spans(&h.negative_spans, h.negative_buckets.len(), "negative side"))
            .map_err(|e| e.0)?;
        f(row, Some(h));
    }
    Ok(())
}

/// The histograms of a struct column of [`histogram_fields`] (SQL's `histogram`), `None` for
/// its null rows.
pub fn histograms_from_struct(s: &StructArray) -> Result<Vec<Option<FloatHistogram>>, String> {
    let mut out = Vec::with_capacity(s.len());
    decode_columns(s.columns(), s.nulls(), |_, h| out.push(h))?;
    Ok(out)
}

fn spans_at(list: &ListArray, row: usize) -> Result<Vec<Span>, String> {
    let v = list.value(row);
    let st = v.as_struct_opt().ok_or("spans type")?;
    let off = st
        .column(0)
        .as_primitive_opt::<Int32Type>()
        .ok_or("span offset type")?;
    let len = st
        .column(1)
        .as_primitive_opt::<UInt32Type>()
        .ok_or("span length type")?;
    Ok((0..st.len())
        .map(|i| Span {
            offset: off.value(i),
            length: len.value(i),
        })
        .collect())
}

fn floats_at(list: &ListArray, row: usize) -> Result<Vec<f64>, String> {
    let v = list.value(row);
    let p = v
        .as_primitive_opt::<Float64Type>()
        .ok_or("bucket list type")?;
    Ok(p.values().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_through_a_struct_column_with_nulls() {
        let a = FloatHistogram {
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 6.0,
            sum: 12.5,
            positive_spans: vec![Span {
                offset: 2,
                length: 2,
            }],
            positive_buckets: vec![2.0, 3.0],
            hint: CounterResetHint::Gauge,
            ..Default::default()
        };
        let b = FloatHistogram {
            schema: super::super::CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 4.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.0, 2.0],
            custom_values: vec![1.0, 5.0],
            ..Default::default()
        };
        let mut builder = HistogramBuilder::default();
        builder.push(&a);
        builder.push(&b);
        builder.push(&a);
        let s = builder.finish_struct(Some(NullBuffer::from(vec![true, true, false])));
        let got = histograms_from_struct(&s).unwrap();
        assert_eq!(got, vec![Some(a), Some(b), None]);
    }

    #[test]
    fn damaged_columns_are_refused_with_a_reason() {
        let mut builder = HistogramBuilder::default();
        builder.push(&FloatHistogram::default());
        let mut cols = builder.finish();
        cols.swap(2, 3);
        cols.pop();
        assert!(decode_columns(&cols, None, |_, _| {}).is_err());
    }
}
