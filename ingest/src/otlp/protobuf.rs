//! The protobuf body of `ExportMetricsServiceRequest`, read in place (strings are slices of
//! the body) with the field numbers of `opentelemetry/proto/metrics/v1/metrics.proto`.
//! Repeated scalars are read packed or one by one, as proto3 parsers must.

use std::borrow::Cow;

use super::{
    Attr, Budget, Data, ExponentialBuckets, ExponentialPoint, HistogramPoint, MAX_VALUE_DEPTH,
    Metric, NumberPoint, Request, ResourceMetrics, ScopeMetrics, SummaryPoint, Temporality, Value,
};
use crate::remote_write::{DecodeError, FIXED64, LEN, Pb, VARINT};

type R<T> = Result<T, DecodeError>;

fn bad(e: String) -> DecodeError {
    DecodeError::BadData(format!("protobuf: {e}"))
}

fn text(b: &[u8]) -> R<Cow<'_, str>> {
    std::str::from_utf8(b)
        .map(Cow::Borrowed)
        .map_err(|_| bad("a string is not valid UTF-8".into()))
}

/// Reads an uncompressed `ExportMetricsServiceRequest`.
pub fn decode(raw: &[u8]) -> R<Request<'_>> {
    let mut budget = Budget::default();
    let mut out = Request::default();
    let mut pb = Pb::new(raw);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, LEN) => {
                budget.take::<ResourceMetrics<'_>>(1)?;
                let rm = resource_metrics(pb.bytes().map_err(bad)?, &mut budget)?;
                out.resources.push(rm);
            }
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

fn resource_metrics<'a>(buf: &'a [u8], budget: &mut Budget) -> R<ResourceMetrics<'a>> {
    let mut out = ResourceMetrics::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            // Resource: its attributes (1).
            (1, LEN) => {
                let mut res = Pb::new(pb.bytes().map_err(bad)?);
                while let Some((field, wire)) = res.key().map_err(bad)? {
                    match (field, wire) {
                        (1, LEN) => out
                            .attributes
                            .push(key_value(res.bytes().map_err(bad)?, budget)?),
                        _ => res.skip(wire).map_err(bad)?,
                    }
                }
            }
            (2, LEN) => {
                budget.take::<ScopeMetrics<'_>>(1)?;
                out.scopes
                    .push(scope_metrics(pb.bytes().map_err(bad)?, budget)?);
            }
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

fn scope_metrics<'a>(buf: &'a [u8], budget: &mut Budget) -> R<ScopeMetrics<'a>> {
    let mut out = ScopeMetrics::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            // InstrumentationScope: name (1), version (2), attributes (3).
            (1, LEN) => {
                let mut scope = Pb::new(pb.bytes().map_err(bad)?);
                while let Some((field, wire)) = scope.key().map_err(bad)? {
                    match (field, wire) {
                        (1, LEN) => out.name = text(scope.bytes().map_err(bad)?)?,
                        (2, LEN) => out.version = text(scope.bytes().map_err(bad)?)?,
                        (3, LEN) => out
                            .attributes
                            .push(key_value(scope.bytes().map_err(bad)?, budget)?),
                        _ => scope.skip(wire).map_err(bad)?,
                    }
                }
            }
            (2, LEN) => {
                budget.take::<Metric<'_>>(1)?;
                out.metrics.push(metric(pb.bytes().map_err(bad)?, budget)?);
            }
            (3, LEN) => out.schema_url = text(pb.bytes().map_err(bad)?)?,
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

fn metric<'a>(buf: &'a [u8], budget: &mut Budget) -> R<Metric<'a>> {
    let mut out = Metric::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, LEN) => out.name = text(pb.bytes().map_err(bad)?)?,
            (2, LEN) => out.description = text(pb.bytes().map_err(bad)?)?,
            (3, LEN) => out.unit = text(pb.bytes().map_err(bad)?)?,
            (5, LEN) => {
                let (points, _, _) = number_points(pb.bytes().map_err(bad)?, budget)?;
                out.data = Data::Gauge(points);
            }
            (7, LEN) => {
                let (points, temporality, monotonic) =
                    number_points(pb.bytes().map_err(bad)?, budget)?;
                out.data = Data::Sum {
                    monotonic,
                    temporality,
                    points,
                };
            }
            (9, LEN) => {
                let mut points = Vec::new();
                let temporality = data_points(pb.bytes().map_err(bad)?, budget, |buf, budget| {
                    points.push(histogram_point(buf, budget)?);
                    Ok(())
                })?;
                out.data = Data::Histogram {
                    temporality,
                    points,
                };
            }
            (10, LEN) => {
                let mut points = Vec::new();
                let temporality = data_points(pb.bytes().map_err(bad)?, budget, |buf, budget| {
                    points.push(exponential_point(buf, budget)?);
                    Ok(())
                })?;
                out.data = Data::ExponentialHistogram {
                    temporality,
                    points,
                };
            }
            (11, LEN) => {
                let mut points = Vec::new();
                data_points(pb.bytes().map_err(bad)?, budget, |buf, budget| {
                    points.push(summary_point(buf, budget)?);
                    Ok(())
                })?;
                out.data = Data::Summary(points);
            }
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

/// A Gauge or Sum: its points, temporality and monotonicity.
fn number_points<'a>(
    buf: &'a [u8],
    budget: &mut Budget,
) -> R<(Vec<NumberPoint<'a>>, Temporality, bool)> {
    let mut points = Vec::new();
    let mut monotonic = false;
    let mut temporality = Temporality::Unspecified;
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, LEN) => {
                budget.take::<NumberPoint<'_>>(1)?;
                points.push(number_point(pb.bytes().map_err(bad)?, budget)?);
            }
            (2, VARINT) => temporality = Temporality::from_number(pb.varint().map_err(bad)? as i64),
            (3, VARINT) => monotonic = pb.varint().map_err(bad)? != 0,
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok((points, temporality, monotonic))
}

/// A Histogram, ExponentialHistogram or Summary: each data point (field 1) to `point`, and the
/// temporality (field 2; a Summary has none).
fn data_points<'a>(
    buf: &'a [u8],
    budget: &mut Budget,
    mut point: impl FnMut(&'a [u8], &mut Budget) -> R<()>,
) -> R<Temporality> {
    let mut temporality = Temporality::Unspecified;
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, LEN) => {
                // The largest point kind, whatever this one is.
                budget.take::<HistogramPoint<'_>>(1)?;
                point(pb.bytes().map_err(bad)?, budget)?;
            }
            (2, VARINT) => temporality = Temporality::from_number(pb.varint().map_err(bad)? as i64),
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(temporality)
}

fn fixed64(pb: &mut Pb<'_>) -> R<u64> {
    pb.fixed64().map_err(bad)
}

fn double(pb: &mut Pb<'_>) -> R<f64> {
    Ok(f64::from_bits(fixed64(pb)?))
}

fn flags(pb: &mut Pb<'_>) -> R<u32> {
    Ok(pb.varint().map_err(bad)? as u32)
}

fn number_point<'a>(buf: &'a [u8], budget: &mut Budget) -> R<NumberPoint<'a>> {
    let mut out = NumberPoint::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (2, FIXED64) => out.point.start_ns = fixed64(&mut pb)?,
            (3, FIXED64) => out.point.time_ns = fixed64(&mut pb)?,
            (4, FIXED64) => out.value = double(&mut pb)?,
            (5, LEN) => {
                pb.skip(wire).map_err(bad)?;
                out.point.exemplars += 1;
            }
            (6, FIXED64) => out.value = fixed64(&mut pb)? as i64 as f64,
            (7, LEN) => out
                .point
                .attributes
                .push(key_value(pb.bytes().map_err(bad)?, budget)?),
            (8, VARINT) => out.point.flags = flags(&mut pb)?,
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

fn histogram_point<'a>(buf: &'a [u8], budget: &mut Budget) -> R<HistogramPoint<'a>> {
    let mut out = HistogramPoint::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (2, FIXED64) => out.point.start_ns = fixed64(&mut pb)?,
            (3, FIXED64) => out.point.time_ns = fixed64(&mut pb)?,
            (4, FIXED64) => out.count = fixed64(&mut pb)?,
            (5, FIXED64) => out.sum = Some(double(&mut pb)?),
            (6, LEN) => {
                let packed = pb.bytes().map_err(bad)?;
                budget.take::<u64>(packed.len() / 8)?;
                out.bucket_counts.extend(fixed_words(packed)?);
            }
            (6, FIXED64) => {
                budget.take::<u64>(1)?;
                out.bucket_counts.push(fixed64(&mut pb)?);
            }
            (7, LEN) => {
                let packed = pb.bytes().map_err(bad)?;
                budget.take::<u64>(packed.len() / 8)?;
                out.explicit_bounds
                    .extend(fixed_words(packed)?.map(f64::from_bits));
            }
            (7, FIXED64) => {
                budget.take::<f64>(1)?;
                out.explicit_bounds.push(double(&mut pb)?);
            }
            (8, LEN) => {
                pb.skip(wire).map_err(bad)?;
                out.point.exemplars += 1;
            }
            (9, LEN) => out
                .point
                .attributes
                .push(key_value(pb.bytes().map_err(bad)?, budget)?),
            (10, VARINT) => out.point.flags = flags(&mut pb)?,
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

fn exponential_point<'a>(buf: &'a [u8], budget: &mut Budget) -> R<ExponentialPoint<'a>> {
    let mut out = ExponentialPoint::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, LEN) => out
                .point
                .attributes
                .push(key_value(pb.bytes().map_err(bad)?, budget)?),
            (2, FIXED64) => out.point.start_ns = fixed64(&mut pb)?,
            (3, FIXED64) => out.point.time_ns = fixed64(&mut pb)?,
            (4, FIXED64) => out.count = fixed64(&mut pb)?,
            (5, FIXED64) => out.sum = Some(double(&mut pb)?),
            (6, VARINT) => out.scale = zigzag32(pb.varint().map_err(bad)?)?,
            (7, FIXED64) => out.zero_count = fixed64(&mut pb)?,
            (8, LEN) => out.positive = exponential_buckets(pb.bytes().map_err(bad)?, budget)?,
            (9, LEN) => out.negative = exponential_buckets(pb.bytes().map_err(bad)?, budget)?,
            (10, VARINT) => out.point.flags = flags(&mut pb)?,
            (11, LEN) => {
                pb.skip(wire).map_err(bad)?;
                out.point.exemplars += 1;
            }
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

fn zigzag32(v: u64) -> R<i32> {
    let v = ((v >> 1) as i64) ^ -((v & 1) as i64);
    i32::try_from(v).map_err(|_| bad(format!("{v} does not fit a sint32")))
}

/// `ExponentialHistogramDataPoint.Buckets`: `offset` (sint32), `bucket_counts` (uint64,
/// packed or not).
fn exponential_buckets(buf: &[u8], budget: &mut Budget) -> R<ExponentialBuckets> {
    let mut out = ExponentialBuckets::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, VARINT) => out.offset = zigzag32(pb.varint().map_err(bad)?)?,
            (2, LEN) => {
                let packed = pb.bytes().map_err(bad)?;
                // At least one byte a count.
                budget.take::<u64>(packed.len())?;
                let mut p = Pb::new(packed);
                while p.pos < packed.len() {
                    out.bucket_counts.push(p.varint().map_err(bad)?);
                }
            }
            (2, VARINT) => {
                budget.take::<u64>(1)?;
                out.bucket_counts.push(pb.varint().map_err(bad)?);
            }
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

/// Packed fixed64 words.
fn fixed_words(packed: &[u8]) -> R<impl Iterator<Item = u64> + '_> {
    if !packed.len().is_multiple_of(8) {
        return Err(bad(format!(
            "a packed fixed64 field is {} bytes, not a multiple of 8",
            packed.len()
        )));
    }
    Ok(packed
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))))
}

fn summary_point<'a>(buf: &'a [u8], budget: &mut Budget) -> R<SummaryPoint<'a>> {
    let mut out = SummaryPoint::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (2, FIXED64) => out.point.start_ns = fixed64(&mut pb)?,
            (3, FIXED64) => out.point.time_ns = fixed64(&mut pb)?,
            (4, FIXED64) => out.count = fixed64(&mut pb)?,
            (5, FIXED64) => out.sum = double(&mut pb)?,
            (6, LEN) => {
                budget.take::<(f64, f64)>(1)?;
                let (mut q, mut v) = (0.0, 0.0);
                let mut vq = Pb::new(pb.bytes().map_err(bad)?);
                while let Some((field, wire)) = vq.key().map_err(bad)? {
                    match (field, wire) {
                        (1, FIXED64) => q = double(&mut vq)?,
                        (2, FIXED64) => v = double(&mut vq)?,
                        _ => vq.skip(wire).map_err(bad)?,
                    }
                }
                out.quantiles.push((q, v));
            }
            (7, LEN) => out
                .point
                .attributes
                .push(key_value(pb.bytes().map_err(bad)?, budget)?),
            (8, VARINT) => out.point.flags = flags(&mut pb)?,
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok(out)
}

/// A `KeyValue`, its value as a label string.
fn key_value<'a>(buf: &'a [u8], budget: &mut Budget) -> R<Attr<'a>> {
    budget.take::<Attr<'_>>(1)?;
    let (key, value) = key_value_tree(buf, budget, 0)?;
    Ok(Attr {
        key,
        value: value.into_label(),
    })
}

fn key_value_tree<'a>(
    buf: &'a [u8],
    budget: &mut Budget,
    depth: usize,
) -> R<(Cow<'a, str>, Value<'a>)> {
    let (mut key, mut value) = (Cow::Borrowed(""), Value::Empty);
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        match (field, wire) {
            (1, LEN) => key = text(pb.bytes().map_err(bad)?)?,
            (2, LEN) => value = any_value(pb.bytes().map_err(bad)?, budget, depth)?,
            _ => pb.skip(wire).map_err(bad)?,
        }
    }
    Ok((key, value))
}

/// An `AnyValue`; arrays and maps nest at most [`MAX_VALUE_DEPTH`] levels.
fn any_value<'a>(buf: &'a [u8], budget: &mut Budget, depth: usize) -> R<Value<'a>> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(DecodeError::BadData(format!(
            "an attribute value nests arrays or maps more than {MAX_VALUE_DEPTH} levels deep"
        )));
    }
    let mut value = Value::Empty;
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key().map_err(bad)? {
        value = match (field, wire) {
            (1, LEN) => Value::Str(text(pb.bytes().map_err(bad)?)?),
            (2, VARINT) => Value::Bool(pb.varint().map_err(bad)? != 0),
            (3, VARINT) => Value::Int(pb.varint().map_err(bad)? as i64),
            (4, FIXED64) => Value::Double(double(&mut pb)?),
            (5, LEN) => {
                let mut items = Vec::new();
                let mut arr = Pb::new(pb.bytes().map_err(bad)?);
                while let Some((field, wire)) = arr.key().map_err(bad)? {
                    match (field, wire) {
                        (1, LEN) => {
                            budget.take::<Value<'_>>(1)?;
                            items.push(any_value(arr.bytes().map_err(bad)?, budget, depth + 1)?);
                        }
                        _ => arr.skip(wire).map_err(bad)?,
                    }
                }
                Value::Array(items)
            }
            (6, LEN) => {
                let mut entries = Vec::new();
                let mut kvs = Pb::new(pb.bytes().map_err(bad)?);
                while let Some((field, wire)) = kvs.key().map_err(bad)? {
                    match (field, wire) {
                        (1, LEN) => {
                            budget.take::<(Cow<'_, str>, Value<'_>)>(1)?;
                            entries.push(key_value_tree(
                                kvs.bytes().map_err(bad)?,
                                budget,
                                depth + 1,
                            )?);
                        }
                        _ => kvs.skip(wire).map_err(bad)?,
                    }
                }
                Value::Map(entries)
            }
            (7, LEN) => {
                use base64::Engine;
                Value::Bytes(
                    base64::engine::general_purpose::STANDARD.encode(pb.bytes().map_err(bad)?),
                )
            }
            _ => {
                pb.skip(wire).map_err(bad)?;
                continue;
            }
        };
    }
    Ok(value)
}
