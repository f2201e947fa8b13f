//! Scalar UDFs that put PromQL's per-element work into DataFusion expressions: value
//! functions, Go-semantics comparisons, and label-set rewrites (`__name__` dropping, grouping
//! keys, `label_replace`, `label_join`).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::instant::InstantFn;
use crate::labelset::{self, Grouping};
use crate::plan::VectorOp;
use crate::plan::input::{LabelsBuilder, LabelsCol};

/// `value -> f(value)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ValueFn {
    func: InstantFn,
    name: String,
    signature: Signature,
}

impl ValueFn {
    pub fn call(func: InstantFn, value: Expr) -> Expr {
        let name = format!("prom_{func:?}").to_lowercase();
        ScalarUDF::new_from_impl(ValueFn {
            func,
            name,
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        })
        .call(vec![value])
    }
}

impl ScalarUDFImpl for ValueFn {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let v = a[0].as_primitive::<Float64Type>();
        let out: Float64Array = v.unary(|x| self.func.apply(x));
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `a op b` for a comparison operator, with Go's float semantics (NaN compares false, except
/// with `!=`; `-0 == 0`), which Arrow's total-order comparisons do not have.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CompareFn {
    op: VectorOp,
    name: String,
    signature: Signature,
}

impl CompareFn {
    pub fn call(op: VectorOp, a: Expr, b: Expr) -> Expr {
        ScalarUDF::new_from_impl(CompareFn {
            op,
            name: format!("prom_{op:?}").to_lowercase(),
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Float64],
                Volatility::Immutable,
            ),
        })
        .call(vec![a, b])
    }
}

impl ScalarUDFImpl for CompareFn {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let (l, r) = (
            a[0].as_primitive::<Float64Type>(),
            a[1].as_primitive::<Float64Type>(),
        );
        let out: BooleanArray = l
            .values()
            .iter()
            .zip(r.values().iter())
            .map(|(x, y)| Some(self.op.apply(*x, *y).1))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// A rewrite of the encoded label set.
#[derive(Debug, Clone)]
pub enum LabelsKind {
    /// Marks `__name__` for removal at the end of the query.
    MarkDropName,
    /// The grouping key of an aggregation.
    Group(Grouping),
    Replace {
        dst: String,
        replacement: String,
        src: String,
        regex: Regex,
    },
    Join {
        dst: String,
        separator: String,
        src: Vec<String>,
    },
}

impl LabelsKind {
    fn describe(&self) -> String {
        match self {
            LabelsKind::MarkDropName => "drop_name".into(),
            LabelsKind::Group(g) => format!("group {g:?}"),
            LabelsKind::Replace {
                dst,
                replacement,
                src,
                regex,
            } => format!(
                "label_replace {dst:?} {replacement:?} {src:?} {:?}",
                regex.as_str()
            ),
            LabelsKind::Join {
                dst,
                separator,
                src,
            } => format!("label_join {dst:?} {separator:?} {src:?}"),
        }
    }

    fn apply(&self, labels: &[u8], out: &mut Vec<u8>) {
        match self {
            LabelsKind::MarkDropName => *out = labelset::mark_drop_name(labels),
            LabelsKind::Group(g) => g.key(labels, out),
            LabelsKind::Replace {
                dst,
                replacement,
                src,
                regex,
            } => {
                let value = labelset::get(labels, src).unwrap_or("");
                match regex.captures(value) {
                    Some(c) => {
                        let mut res = String::new();
                        c.expand(replacement, &mut res);
                        *out = set_label(labels, dst, &res);
                    }
                    None => {
                        out.clear();
                        out.extend_from_slice(labels);
                    }
                }
            }
            LabelsKind::Join {
                dst,
                separator,
                src,
            } => {
                let joined: Vec<&str> = src
                    .iter()
                    .map(|s| labelset::get(labels, s).unwrap_or(""))
                    .collect();
                *out = set_label(labels, dst, &joined.join(separator));
            }
        }
    }
}

/// Sets a label; setting `__name__` itself keeps it (drops a pending removal mark).
fn set_label(labels: &[u8], name: &str, value: &str) -> Vec<u8> {
    let out = labelset::set(labels, name, value);
    if name == labelset::METRIC_NAME && labelset::has_drop_mark(&out) {
        return labelset::set(&out, labelset::DROP_NAME, "");
    }
    out
}

/// `labels -> labels'`.
#[derive(Debug)]
pub struct LabelsFn {
    kind: LabelsKind,
    name: String,
    signature: Signature,
}

impl PartialEq for LabelsFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind.describe() == other.kind.describe()
    }
}

impl Eq for LabelsFn {}

impl Hash for LabelsFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.describe().hash(state)
    }
}

impl LabelsFn {
    pub fn call(kind: LabelsKind, labels: Expr) -> Expr {
        let name = match &kind {
            LabelsKind::MarkDropName => "prom_drop_name",
            LabelsKind::Group(_) => "prom_group_key",
            LabelsKind::Replace { .. } => "prom_label_replace",
            LabelsKind::Join { .. } => "prom_label_join",
        }
        .to_string();
        ScalarUDF::new_from_impl(LabelsFn {
            kind,
            name,
            signature: Signature::exact(vec![DataType::BinaryView], Volatility::Immutable),
        })
        .call(vec![labels])
    }
}

impl ScalarUDFImpl for LabelsFn {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::BinaryView)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let labels = LabelsCol::new(&a[0]);
        let mut b = LabelsBuilder::with_capacity(labels.len());
        let mut out = Vec::new();
        // Rows of one series repeat their label set: rewrite each distinct run once.
        let mut last: Option<&[u8]> = None;
        for i in 0..labels.len() {
            let l = labels.value(i);
            if last != Some(l) {
                self.kind.apply(l, &mut out);
                last = Some(l);
            }
            b.append(&out);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish()) as ArrayRef))
    }
}

/// Whether the label set's `__name__` is marked for removal.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HasDropMark {
    signature: Signature,
}

impl HasDropMark {
    pub fn call(labels: Expr) -> Expr {
        ScalarUDF::new_from_impl(HasDropMark {
            signature: Signature::exact(vec![DataType::BinaryView], Volatility::Immutable),
        })
        .call(vec![labels])
    }
}

impl ScalarUDFImpl for HasDropMark {
    fn name(&self) -> &str {
        "prom_has_drop_mark"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let labels = LabelsCol::new(&a[0]);
        let out: BooleanArray = (0..labels.len())
            .map(|i| Some(labelset::has_drop_mark(labels.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
