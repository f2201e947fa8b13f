//! The JSON body of `ExportMetricsServiceRequest` (OTLP/HTTP with `application/json`): field
//! names in lowerCamelCase (snake_case accepted too, as protobuf's JSON mapping allows),
//! 64-bit integers as strings or numbers, doubles as numbers or `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, enums as numbers (or their names).
//!
//! Before parsing, the body's nesting is checked ([`crate::json_depth`]) and its structure
//! counted: at most [`MAX_STRUCTURE`] objects, arrays and separators, so the parsed form stays
//! within a bound whatever the body holds.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, Visitor};

use super::{
    Attr, Budget, Data, ExponentialBuckets, ExponentialPoint, HistogramPoint, MAX_VALUE_DEPTH,
    Metric, NumberPoint, Point, Request, ResourceMetrics, ScopeMetrics, SummaryPoint, Temporality,
    Value,
};
use crate::remote_write::DecodeError;

/// Most `{`, `[` and `,` a JSON body may hold (outside strings): every item of the body has
/// at least one, so this bounds the items, and with them the memory the parse takes before
/// the model's budget is checked (a few hundred bytes an item at most). About 70,000 data
/// points with a few attributes each; larger batches go as protobuf.
pub const MAX_STRUCTURE: usize = 1_000_000;

/// Reads a JSON `ExportMetricsServiceRequest`.
pub fn decode(body: &[u8]) -> Result<Request<'_>, DecodeError> {
    crate::json_depth::check(body).map_err(DecodeError::BadData)?;
    let n = crate::json_depth::structure(body);
    if n > MAX_STRUCTURE {
        return Err(DecodeError::TooLarge(format!(
            "the JSON body holds more than {MAX_STRUCTURE} objects, arrays and elements: send \
             it in smaller batches"
        )));
    }
    let req: JRequest<'_> =
        serde_json::from_slice(body).map_err(|e| DecodeError::BadData(format!("JSON: {e}")))?;
    let mut budget = Budget::default();
    req.into_model(&mut budget)
}

type R<T> = Result<T, DecodeError>;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JRequest<'a> {
    #[serde(borrow, alias = "resource_metrics")]
    resource_metrics: Vec<JResourceMetrics<'a>>,
}

impl<'a> JRequest<'a> {
    fn into_model(self, budget: &mut Budget) -> R<Request<'a>> {
        let mut out = Request::default();
        for rm in self.resource_metrics {
            budget.take::<ResourceMetrics<'_>>(1)?;
            let mut r = ResourceMetrics {
                attributes: attrs(rm.resource.attributes, budget)?,
                scopes: Vec::with_capacity(rm.scope_metrics.len()),
            };
            for sm in rm.scope_metrics {
                budget.take::<ScopeMetrics<'_>>(1)?;
                let mut s = ScopeMetrics {
                    name: sm.scope.name,
                    version: sm.scope.version,
                    attributes: attrs(sm.scope.attributes, budget)?,
                    schema_url: sm.schema_url,
                    metrics: Vec::with_capacity(sm.metrics.len()),
                };
                for m in sm.metrics {
                    budget.take::<Metric<'_>>(1)?;
                    s.metrics.push(m.into_model(budget)?);
                }
                r.scopes.push(s);
            }
            out.resources.push(r);
        }
        Ok(out)
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JResourceMetrics<'a> {
    #[serde(borrow)]
    resource: JResource<'a>,
    #[serde(borrow, alias = "scope_metrics")]
    scope_metrics: Vec<JScopeMetrics<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JResource<'a> {
    #[serde(borrow)]
    attributes: Vec<JKeyValue<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JScopeMetrics<'a> {
    #[serde(borrow)]
    scope: JScope<'a>,
    #[serde(borrow, rename = "schemaUrl", alias = "schema_url")]
    schema_url: Cow<'a, str>,
    #[serde(borrow)]
    metrics: Vec<JMetric<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JScope<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    attributes: Vec<JKeyValue<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JMetric<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    description: Cow<'a, str>,
    #[serde(borrow)]
    unit: Cow<'a, str>,
    #[serde(borrow)]
    gauge: Option<JNumbers<'a>>,
    #[serde(borrow)]
    sum: Option<JNumbers<'a>>,
    #[serde(borrow)]
    histogram: Option<JHistograms<'a>>,
    #[serde(borrow, alias = "exponential_histogram")]
    exponential_histogram: Option<JExponential<'a>>,
    #[serde(borrow)]
    summary: Option<JSummaries<'a>>,
}

impl<'a> JMetric<'a> {
    fn into_model(self, budget: &mut Budget) -> R<Metric<'a>> {
        let data = if let Some(g) = self.gauge {
            Data::Gauge(number_points(g.data_points, budget)?)
        } else if let Some(s) = self.sum {
            Data::Sum {
                monotonic: s.is_monotonic,
                temporality: s.aggregation_temporality.0,
                points: number_points(s.data_points, budget)?,
            }
        } else if let Some(h) = self.histogram {
            let mut points = Vec::with_capacity(h.data_points.len());
            for p in h.data_points {
                budget.take::<HistogramPoint<'_>>(1)?;
                budget.take::<u64>(p.bucket_counts.len() + p.explicit_bounds.len())?;
                points.push(HistogramPoint {
                    point: point(
                        p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.flags,
                        p.exemplars,
                        budget,
                    )?,
                    count: p.count.0,
                    sum: p.sum.map(|s| s.0),
                    bucket_counts: p.bucket_counts.into_iter().map(|c| c.0).collect(),
                    explicit_bounds: p.explicit_bounds.into_iter().map(|b| b.0).collect(),
                });
            }
            Data::Histogram {
                temporality: h.aggregation_temporality.0,
                points,
            }
        } else if let Some(e) = self.exponential_histogram {
            let mut points = Vec::with_capacity(e.data_points.len());
            for p in e.data_points {
                budget.take::<ExponentialPoint<'_>>(1)?;
                budget
                    .take::<u64>(p.positive.bucket_counts.len() + p.negative.bucket_counts.len())?;
                let buckets = |b: JBuckets| ExponentialBuckets {
                    offset: b.offset,
                    bucket_counts: b.bucket_counts.into_iter().map(|c| c.0).collect(),
                };
                points.push(ExponentialPoint {
                    point: point(
                        p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.flags,
                        p.exemplars,
                        budget,
                    )?,
                    count: p.count.0,
                    sum: p.sum.map(|s| s.0),
                    scale: p.scale,
                    zero_count: p.zero_count.0,
                    positive: buckets(p.positive),
                    negative: buckets(p.negative),
                });
            }
            Data::ExponentialHistogram {
                temporality: e.aggregation_temporality.0,
                points,
            }
        } else if let Some(s) = self.summary {
            let mut points = Vec::with_capacity(s.data_points.len());
            for p in s.data_points {
                budget.take::<SummaryPoint<'_>>(1)?;
                budget.take::<(f64, f64)>(p.quantile_values.len())?;
                points.push(SummaryPoint {
                    point: point(
                        p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.flags,
                        Vec::new(),
                        budget,
                    )?,
                    count: p.count.0,
                    sum: p.sum.0,
                    quantiles: p
                        .quantile_values
                        .into_iter()
                        .map(|q| (q.quantile.0, q.value.0))
                        .collect(),
                });
            }
            Data::Summary(points)
        } else {
            Data::Empty
        };
        Ok(Metric {
            name: self.name,
            description: self.description,
            unit: self.unit,
            data,
        })
    }
}

fn number_points<'a>(
    points: Vec<JNumberPoint<'a>>,
    budget: &mut Budget,
) -> R<Vec<NumberPoint<'a>>> {
    let mut out = Vec::with_capacity(points.len());
    for p in points {
        budget.take::<NumberPoint<'_>>(1)?;
        let value = match (p.as_double, p.as_int) {
            (Some(d), _) => d.0,
            (None, Some(i)) => i.0 as f64,
            (None, None) => 0.0,
        };
        out.push(NumberPoint {
            point: point(
                p.attributes,
                p.start_time_unix_nano,
                p.time_unix_nano,
                p.flags,
                p.exemplars,
                budget,
            )?,
            value,
        });
    }
    Ok(out)
}

fn point<'a>(
    attributes: Vec<JKeyValue<'a>>,
    start: U64,
    time: U64,
    flags: u32,
    exemplars: Vec<IgnoredAny>,
    budget: &mut Budget,
) -> R<Point<'a>> {
    Ok(Point {
        attributes: attrs(attributes, budget)?,
        start_ns: start.0,
        time_ns: time.0,
        flags,
        exemplars: exemplars.len(),
    })
}

fn attrs<'a>(kvs: Vec<JKeyValue<'a>>, budget: &mut Budget) -> R<Vec<Attr<'a>>> {
    budget.take::<Attr<'_>>(kvs.len())?;
    kvs.into_iter()
        .map(|kv| {
            Ok(Attr {
                key: kv.key,
                value: kv.value.into_value(0)?.into_label(),
            })
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JNumbers<'a> {
    #[serde(borrow, alias = "data_points")]
    data_points: Vec<JNumberPoint<'a>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: JTemporality,
    #[serde(alias = "is_monotonic")]
    is_monotonic: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JNumberPoint<'a> {
    #[serde(borrow)]
    attributes: Vec<JKeyValue<'a>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    #[serde(alias = "as_double")]
    as_double: Option<F64>,
    #[serde(alias = "as_int")]
    as_int: Option<I64>,
    exemplars: Vec<IgnoredAny>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JHistograms<'a> {
    #[serde(borrow, alias = "data_points")]
    data_points: Vec<JHistogramPoint<'a>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: JTemporality,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JHistogramPoint<'a> {
    #[serde(borrow)]
    attributes: Vec<JKeyValue<'a>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    count: U64,
    sum: Option<F64>,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Vec<U64>,
    #[serde(alias = "explicit_bounds")]
    explicit_bounds: Vec<F64>,
    exemplars: Vec<IgnoredAny>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JExponential<'a> {
    #[serde(borrow, alias = "data_points")]
    data_points: Vec<JExponentialPoint<'a>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: JTemporality,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JExponentialPoint<'a> {
    #[serde(borrow)]
    attributes: Vec<JKeyValue<'a>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    count: U64,
    sum: Option<F64>,
    scale: i32,
    #[serde(alias = "zero_count")]
    zero_count: U64,
    positive: JBuckets,
    negative: JBuckets,
    exemplars: Vec<IgnoredAny>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JBuckets {
    offset: i32,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Vec<U64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JSummaries<'a> {
    #[serde(borrow, alias = "data_points")]
    data_points: Vec<JSummaryPoint<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JSummaryPoint<'a> {
    #[serde(borrow)]
    attributes: Vec<JKeyValue<'a>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    count: U64,
    sum: F64,
    #[serde(alias = "quantile_values")]
    quantile_values: Vec<JQuantile>,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JQuantile {
    quantile: F64,
    value: F64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JKeyValue<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: JAny<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JAny<'a> {
    #[serde(borrow, alias = "string_value")]
    string_value: Option<Cow<'a, str>>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value")]
    int_value: Option<I64>,
    #[serde(alias = "double_value")]
    double_value: Option<F64>,
    #[serde(borrow, alias = "array_value")]
    array_value: Option<JArray<'a>>,
    #[serde(borrow, alias = "kvlist_value")]
    kvlist_value: Option<JKvList<'a>>,
    #[serde(borrow, alias = "bytes_value")]
    bytes_value: Option<Cow<'a, str>>,
}

impl<'a> JAny<'a> {
    fn into_value(self, depth: usize) -> R<Value<'a>> {
        if depth >= MAX_VALUE_DEPTH {
            return Err(DecodeError::BadData(format!(
                "an attribute value nests arrays or maps more than {MAX_VALUE_DEPTH} levels deep"
            )));
        }
        Ok(if let Some(s) = self.string_value {
            Value::Str(s)
        } else if let Some(b) = self.bool_value {
            Value::Bool(b)
        } else if let Some(i) = self.int_value {
            Value::Int(i.0)
        } else if let Some(d) = self.double_value {
            Value::Double(d.0)
        } else if let Some(a) = self.array_value {
            Value::Array(
                a.values
                    .into_iter()
                    .map(|v| v.into_value(depth + 1))
                    .collect::<R<_>>()?,
            )
        } else if let Some(m) = self.kvlist_value {
            Value::Map(
                m.values
                    .into_iter()
                    .map(|kv| Ok((kv.key, kv.value.into_value(depth + 1)?)))
                    .collect::<R<_>>()?,
            )
        } else if let Some(b) = self.bytes_value {
            // Already base64 in JSON, which is what a label holds.
            Value::Bytes(b.into_owned())
        } else {
            Value::Empty
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JArray<'a> {
    #[serde(borrow)]
    values: Vec<JAny<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JKvList<'a> {
    #[serde(borrow)]
    values: Vec<JKeyValue<'a>>,
}

/// A uint64/fixed64: a number, or a string of digits.
#[derive(Default, Clone, Copy)]
struct U64(u64);

/// An int64/sfixed64: a number, or a string of digits.
#[derive(Default, Clone, Copy)]
struct I64(i64);

/// A double: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (or a number in a string).
#[derive(Default, Clone, Copy)]
struct F64(f64);

/// `AggregationTemporality`: its number, or its name.
#[derive(Default, Clone, Copy)]
struct JTemporality(Temporality);

macro_rules! from_number_or_string {
    ($t:ident, $inner:ty, $what:literal, $parse:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        <$inner>::try_from(v)
                            .map($t)
                            .map_err(|_| E::custom(concat!("out of range for ", $what)))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                        <$inner>::try_from(v)
                            .map($t)
                            .map_err(|_| E::custom(concat!("out of range for ", $what)))
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$t, E> {
                        let parse: fn(&str) -> Option<$inner> = $parse;
                        parse(s)
                            .map($t)
                            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

from_number_or_string!(U64, u64, "an unsigned 64-bit integer", |s| s.parse().ok());
from_number_or_string!(I64, i64, "a 64-bit integer", |s| s.parse().ok());

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64, E> {
                Ok(F64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<F64, E> {
                match s {
                    "NaN" => Ok(F64(f64::NAN)),
                    "Infinity" => Ok(F64(f64::INFINITY)),
                    "-Infinity" => Ok(F64(f64::NEG_INFINITY)),
                    s => s
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .map(F64)
                        .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for JTemporality {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JTemporality;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an aggregation temporality (0, 1, 2 or its name)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JTemporality, E> {
                Ok(JTemporality(Temporality::from_number(v as i64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JTemporality, E> {
                Ok(JTemporality(Temporality::from_number(v)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<JTemporality, E> {
                Ok(JTemporality(match s {
                    "AGGREGATION_TEMPORALITY_DELTA" => Temporality::Delta,
                    "AGGREGATION_TEMPORALITY_CUMULATIVE" => Temporality::Cumulative,
                    "AGGREGATION_TEMPORALITY_UNSPECIFIED" => Temporality::Unspecified,
                    _ => return Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }))
            }
        }
        d.deserialize_any(V)
    }
}
