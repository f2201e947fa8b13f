//! What pushed filters narrow a scan to: equality and `IN` on string columns and `series_id`,
//! ranges on `timestamp`.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};

use crate::labels::Timestamp;

/// What pushed filters narrow a scan to: equality and `IN` filters on the string columns a
/// table names, on `series_id`, and ranges on `timestamp`. The other table providers over the
/// engine (the experiment tables of `quiver-sql`) use it too.
#[derive(Debug, Default, PartialEq)]
pub struct ScanRange {
    string_columns: &'static [&'static str],
    /// Per string column, the values it may have (`None` for a column without a filter).
    pub strings: BTreeMap<&'static str, BTreeSet<String>>,
    pub series: Option<BTreeSet<u64>>,
    pub mint: Option<Timestamp>,
    pub maxt: Option<Timestamp>,
}

impl ScanRange {
    /// The range `filters` select, understanding equality on `string_columns`.
    pub fn from_filters(filters: &[Expr], string_columns: &'static [&'static str]) -> Self {
        let mut r = ScanRange::new(string_columns);
        for f in filters {
            r.apply(f);
        }
        r
    }

    pub fn new(string_columns: &'static [&'static str]) -> Self {
        ScanRange {
            string_columns,
            ..Default::default()
        }
    }

    /// Whether a filter narrows a scan (for `supports_filters_pushdown`).
    pub fn understands(filter: &Expr, string_columns: &'static [&'static str]) -> bool {
        ScanRange::new(string_columns).apply(filter)
    }

    /// `supports_filters_pushdown` for a table whose scan narrows by these string columns:
    /// what a scan understands is pushed (inexact: applied again above), the rest is not.
    pub fn pushdown(
        filters: &[&Expr],
        string_columns: &'static [&'static str],
    ) -> Vec<TableProviderFilterPushDown> {
        filters
            .iter()
            .map(|f| {
                if ScanRange::understands(f, string_columns) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect()
    }

    /// The allowed values of a string column, if filtered.
    pub fn values(&self, column: &str) -> Option<&BTreeSet<String>> {
        self.strings.get(column)
    }

    /// `[mint, maxt]`, open ends as the extreme timestamps.
    pub fn time_range(&self) -> (Timestamp, Timestamp) {
        (
            self.mint.unwrap_or(Timestamp::MIN),
            self.maxt.unwrap_or(Timestamp::MAX),
        )
    }

    fn string_column(&self, name: &str) -> Option<&'static str> {
        self.string_columns.iter().copied().find(|c| *c == name)
    }

    fn intersect_strings(&mut self, column: &'static str, new: BTreeSet<String>) {
        let cur = self.strings.remove(column);
        let mut slot = cur;
        intersect(&mut slot, new);
        if let Some(v) = slot {
            self.strings.insert(column, v);
        }
    }

    /// Narrows the range by one filter; answers whether the filter was understood.
    fn apply(&mut self, e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                let l = self.apply(left);
                let r = self.apply(right);
                l && r
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (column, value, op) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => (c.name.as_str(), v, *op),
                    (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                        Some(op) => (c.name.as_str(), v, op),
                        None => return false,
                    },
                    _ => return false,
                };
                self.apply_comparison(column, op, value)
            }
            Expr::InList(list) if !list.negated => {
                let Expr::Column(c) = list.expr.as_ref() else {
                    return false;
                };
                let values: Option<Vec<&ScalarValue>> = list
                    .list
                    .iter()
                    .map(|e| {
                        if let Expr::Literal(v, _) = e {
                            Some(v)
                        } else {
                            None
                        }
                    })
                    .collect();
                let Some(values) = values else { return false };
                if let Some(column) = self.string_column(&c.name) {
                    let set: Option<BTreeSet<String>> =
                        values.iter().map(|v| scalar_string(v)).collect();
                    return set.map(|s| self.intersect_strings(column, s)).is_some();
                }
                match c.name.as_str() {
                    "series_id" => {
                        let set: Option<BTreeSet<u64>> =
                            values.iter().map(|v| scalar_u64(v)).collect();
                        set.map(|s| intersect(&mut self.series, s)).is_some()
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn apply_comparison(&mut self, column: &str, op: Operator, value: &ScalarValue) -> bool {
        if let (Some(c), Operator::Eq) = (self.string_column(column), op) {
            return scalar_string(value)
                .map(|s| self.intersect_strings(c, [s].into()))
                .is_some();
        }
        match (column, op) {
            ("series_id", Operator::Eq) => scalar_u64(value)
                .map(|v| intersect(&mut self.series, [v].into()))
                .is_some(),
            ("timestamp", op) => {
                let Some(t) = scalar_ms(value) else {
                    return false;
                };
                let (lo, hi) = match op {
                    Operator::Eq => (Some(t), Some(t)),
                    Operator::Gt => (t.checked_add(1), None),
                    Operator::GtEq => (Some(t), None),
                    Operator::Lt => (None, t.checked_sub(1)),
                    Operator::LtEq => (None, Some(t)),
                    _ => return false,
                };
                if let Some(lo) = lo {
                    self.mint = Some(self.mint.map_or(lo, |m| m.max(lo)));
                }
                if let Some(hi) = hi {
                    self.maxt = Some(self.maxt.map_or(hi, |m| m.min(hi)));
                }
                true
            }
            _ => false,
        }
    }
}

fn intersect<T: Ord + Clone>(current: &mut Option<BTreeSet<T>>, new: BTreeSet<T>) {
    *current = Some(match current.take() {
        None => new,
        Some(cur) => cur.intersection(&new).cloned().collect(),
    });
}

fn scalar_string(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, inner) => scalar_string(inner),
        _ => None,
    }
}

fn scalar_u64(v: &ScalarValue) -> Option<u64> {
    match v.cast_to(&DataType::UInt64).ok()? {
        ScalarValue::UInt64(Some(x)) => Some(x),
        _ => None,
    }
}

fn scalar_ms(v: &ScalarValue) -> Option<Timestamp> {
    match v
        .cast_to(&DataType::Timestamp(TimeUnit::Millisecond, None))
        .ok()?
    {
        ScalarValue::TimestampMillisecond(Some(t), _) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn filters_narrow_the_scan() {
        let ts = |ms: i64| {
            lit(ScalarValue::TimestampMillisecond(
                Some(ms),
                Some("UTC".into()),
            ))
        };
        let filters = vec![
            col("metric").eq(lit("up")),
            col("timestamp")
                .gt(ts(1000))
                .and(col("timestamp").lt_eq(ts(5000))),
            col("series_id").in_list(vec![lit(1u64), lit(2u64)], false),
        ];
        let r = ScanRange::from_filters(&filters, &["metric"]);
        assert_eq!(r.values("metric"), Some(&["up".to_string()].into()));
        assert_eq!(r.series, Some([1, 2].into()));
        assert_eq!((r.mint, r.maxt), (Some(1001), Some(5000)));
    }

    #[test]
    fn unknown_filters_are_not_pushed() {
        assert!(!ScanRange::understands(
            &col("value").gt(lit(1.0)),
            &["metric"]
        ));
        assert!(!ScanRange::understands(
            &col("metric").not_eq(lit("x")),
            &["metric"]
        ));
    }
}
