//! Binary operators between two instant vectors, with Prometheus's vector matching: `on` /
//! `ignoring` signatures, `group_left` / `group_right` with label copying, the set operators,
//! and Prometheus's errors for ambiguous matches.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use datafusion::arrow::array::RecordBatch;

use super::Param;
use super::input::{Sample, SeriesOut, decode_hist, for_each_sample};
use crate::error::{Error, Result};
use crate::labelset;
use quiver_storage::histogram::CounterResetHint;

/// An operator of PromQL's binary expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl VectorOp {
    pub fn from_token(s: &str) -> Option<Self> {
        use VectorOp::*;
        Some(match s {
            "+" => Add,
            "-" => Sub,
            "*" => Mul,
            "/" => Div,
            "%" => Mod,
            "^" => Pow,
            "atan2" => Atan2,
            "==" => Eq,
            "!=" => Ne,
            ">" => Gt,
            "<" => Lt,
            ">=" => Ge,
            "<=" => Le,
            "and" => And,
            "or" => Or,
            "unless" => Unless,
            _ => return None,
        })
    }

    pub fn is_comparison(self) -> bool {
        use VectorOp::*;
        matches!(self, Eq | Ne | Gt | Lt | Ge | Le)
    }

    pub fn is_set(self) -> bool {
        matches!(self, VectorOp::And | VectorOp::Or | VectorOp::Unless)
    }

    /// Arithmetic drops `__name__`; comparisons and set operators keep it.
    pub fn drops_name(self) -> bool {
        !self.is_comparison() && !self.is_set()
    }

    /// The value of `l op r` and whether the element is kept (Go float semantics: every
    /// comparison with NaN is false but `!=`).
    pub fn apply(self, l: f64, r: f64) -> (f64, bool) {
        use VectorOp::*;
        match self {
            Add => (l + r, true),
            Sub => (l - r, true),
            Mul => (l * r, true),
            Div => (l / r, true),
            Mod => (l % r, true),
            Pow => (l.powf(r), true),
            Atan2 => (l.atan2(r), true),
            Eq => (l, l == r),
            Ne => (l, l != r),
            Gt => (l, l > r),
            Lt => (l, l < r),
            Ge => (l, l >= r),
            Le => (l, l <= r),
            And | Or | Unless => (l, true),
        }
    }
}

/// Which labels identify a match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Matching {
    On(Vec<String>),
    Ignoring(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cardinality {
    OneToOne,
    /// `group_left(labels)`: many series on the left match one on the right.
    ManyToOne(Vec<String>),
    /// `group_right(labels)`.
    OneToMany(Vec<String>),
    ManyToMany,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinaryOp {
    pub op: VectorOp,
    pub matching: Matching,
    pub card: Cardinality,
    pub return_bool: bool,
    /// `fill_left(v)` / `fill(v)`: the left operand's value where a right series has no match
    /// (Prometheus 3's experimental fill modifiers).
    pub fill_left: Option<Param>,
    /// `fill_right(v)` / `fill(v)`: the right operand's value where a left series has none.
    pub fill_right: Option<Param>,
    /// An operand may hold native histograms (the result then may too).
    pub histograms: bool,
}

/// A sample of one side: a float, or a native histogram (an index into [`Side::hists`]).
#[derive(Debug, Clone, Copy)]
enum Val {
    F(f64),
    H(u32),
}

/// One side of the operator: its distinct series (label set and matching signature, each
/// computed once) and its rows by step.
#[derive(Default)]
struct Side {
    labels: Vec<Vec<u8>>,
    sigs: Vec<u32>,
    /// (step, series, value), in input order.
    rows: Vec<(i64, u32, Val)>,
    /// The encoded histograms the rows point at.
    hists: Vec<Vec<u8>>,
}

impl Side {
    fn sample(&self, v: Val) -> Sample<'_> {
        match v {
            Val::F(f) => Sample::Float(f),
            Val::H(k) => Sample::Hist(&self.hists[k as usize]),
        }
    }
}

/// The value of `l op r`: a float, or an encoded histogram.
enum Res {
    Float(f64),
    Hist(Vec<u8>),
}

/// `l op r` for one pair of samples, as Prometheus's `vectorElemBinop`: the result and whether
/// it is kept. `None` where the operator does not apply to the pair's types (Prometheus
/// reports an info and leaves the pair out, `bool` or not) or where two histograms cannot be
/// combined (exponential with custom buckets: a warning there). Histograms are scaled by `*`
/// and `/` with a float, added and subtracted (a difference is a gauge histogram), and
/// compared with `==` and `!=`, which keep the left histogram.
fn elem_binop(op: VectorOp, l: Sample<'_>, r: Sample<'_>) -> Result<Option<(Res, bool)>> {
    use Sample::{Float, Hist};
    let encode = |h: &mut quiver_storage::FloatHistogram| {
        h.compact(0);
        let mut buf = Vec::new();
        h.encode(&mut buf);
        Res::Hist(buf)
    };
    Ok(match (l, r) {
        (Float(a), Float(b)) => {
            let (v, keep) = op.apply(a, b);
            Some((Res::Float(v), keep))
        }
        (Float(s), Hist(h)) | (Hist(h), Float(s)) if op == VectorOp::Mul => {
            Some((encode(decode_hist(h)?.mul(s)), true))
        }
        (Hist(h), Float(s)) if op == VectorOp::Div => Some((encode(decode_hist(h)?.div(s)), true)),
        (Hist(a), Hist(b)) => match op {
            VectorOp::Add | VectorOp::Sub => {
                let (mut x, y) = (decode_hist(a)?, decode_hist(b)?);
                let merged = if op == VectorOp::Add {
                    x.add(&y)
                } else {
                    x.sub(&y)
                };
                if merged.is_err() {
                    return Ok(None);
                }
                if op == VectorOp::Sub {
                    x.hint = CounterResetHint::Gauge;
                }
                Some((encode(&mut x), true))
            }
            VectorOp::Eq | VectorOp::Ne => {
                let equal = decode_hist(a)?.equals(&decode_hist(b)?);
                Some((Res::Hist(a.to_vec()), equal == (op == VectorOp::Eq)))
            }
            _ => None,
        },
        _ => None,
    })
}

/// Interns label sets and signatures so each is computed and hashed once per query, not once
/// per step.
#[derive(Default)]
struct Interner {
    series: HashMap<Vec<u8>, u32>,
    sigs: HashMap<Vec<u8>, u32>,
    sig_labels: Vec<Vec<u8>>,
}

impl BinaryOp {
    fn signature(&self, labels: &[u8], out: &mut Vec<u8>) {
        match &self.matching {
            Matching::On(names) => {
                labelset::keep(labels, names, out);
                if labelset::has_drop_mark(out) {
                    *out = labelset::set(out, labelset::DROP_NAME, "");
                }
            }
            // `__type__` and `__unit__` stay in the signature: series of different types or
            // units do not match.
            Matching::Ignoring(names) => {
                let mut skip = names.clone();
                skip.push(labelset::METRIC_NAME.into());
                skip.push(labelset::DROP_NAME.into());
                labelset::drop(labels, &skip, out);
            }
        }
    }

    fn side(&self, batches: &[RecordBatch], interner: &mut Interner) -> Side {
        let mut side = Side::default();
        let mut local: HashMap<u32, u32> = HashMap::new();
        let mut last: Option<(Vec<u8>, u32)> = None;
        let mut sig = Vec::new();
        for_each_sample(batches, |l, t, v| {
            let k = match &last {
                Some((raw, k)) if raw.as_slice() == l => *k,
                _ => {
                    let n = interner.series.len() as u32;
                    let global = *interner.series.entry(l.to_vec()).or_insert(n);
                    let k = *local.entry(global).or_insert_with(|| {
                        self.signature(l, &mut sig);
                        let m = interner.sigs.len() as u32;
                        let s = *interner.sigs.entry(sig.clone()).or_insert_with(|| {
                            interner.sig_labels.push(sig.clone());
                            m
                        });
                        side.labels.push(l.to_vec());
                        side.sigs.push(s);
                        (side.labels.len() - 1) as u32
                    });
                    last = Some((l.to_vec(), k));
                    k
                }
            };
            let v = match v {
                Sample::Float(f) => Val::F(f),
                Sample::Hist(h) => {
                    side.hists.push(h.to_vec());
                    Val::H((side.hists.len() - 1) as u32)
                }
            };
            side.rows.push((t, k, v));
        });
        side
    }

    pub(super) fn evaluate(
        &self,
        left: &[RecordBatch],
        right: &[RecordBatch],
    ) -> Result<RecordBatch> {
        let mut interner = Interner::default();
        let lhs = self.side(left, &mut interner);
        let rhs = self.side(right, &mut interner);
        // Rows of each side grouped by step.
        let by_step = |side: &Side| -> HashMap<i64, Vec<(u32, Val)>> {
            let mut m: HashMap<i64, Vec<(u32, Val)>> = HashMap::new();
            for (t, k, v) in &side.rows {
                m.entry(*t).or_default().push((*k, *v));
            }
            m
        };
        let (ls, rs) = (by_step(&lhs), by_step(&rhs));
        let mut steps: Vec<i64> = ls.keys().chain(rs.keys()).copied().collect();
        steps.sort_unstable();
        steps.dedup();
        let empty = Vec::new();
        let mut out = SeriesOut::with_histograms(self.histograms);
        let mut result_labels: HashMap<(u32, u32), Vec<u8>> = HashMap::new();
        for t in steps {
            let l = ls.get(&t).unwrap_or(&empty);
            let r = rs.get(&t).unwrap_or(&empty);
            if self.op.is_set() {
                self.set_op(&lhs, l, &rhs, r, t, &mut out)?;
            } else {
                self.arith_op(&lhs, l, &rhs, r, t, &interner, &mut result_labels, &mut out)?;
            }
        }
        out.finish()
    }

    fn set_op(
        &self,
        lhs: &Side,
        l: &[(u32, Val)],
        rhs: &Side,
        r: &[(u32, Val)],
        t: i64,
        out: &mut SeriesOut,
    ) -> Result<()> {
        let push = |out: &mut SeriesOut, side: &Side, k: u32, v: Val| match v {
            Val::F(f) => {
                out.push(&side.labels[k as usize], t, f);
                Ok(())
            }
            Val::H(h) => out.push_hist(&side.labels[k as usize], t, side.hists[h as usize].clone()),
        };
        match self.op {
            VectorOp::And | VectorOp::Unless => {
                let right: HashSet<u32> = r.iter().map(|(k, _)| rhs.sigs[*k as usize]).collect();
                for (k, v) in l {
                    if right.contains(&lhs.sigs[*k as usize]) == (self.op == VectorOp::And) {
                        push(out, lhs, *k, *v)?;
                    }
                }
            }
            _ => {
                let mut left = HashSet::new();
                for (k, v) in l {
                    left.insert(lhs.sigs[*k as usize]);
                    push(out, lhs, *k, *v)?;
                }
                for (k, v) in r {
                    if !left.contains(&rhs.sigs[*k as usize]) {
                        push(out, rhs, *k, *v)?;
                    }
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn arith_op(
        &self,
        lhs: &Side,
        l: &[(u32, Val)],
        rhs: &Side,
        r: &[(u32, Val)],
        t: i64,
        interner: &Interner,
        result_labels: &mut HashMap<(u32, u32), Vec<u8>>,
        out: &mut SeriesOut,
    ) -> Result<()> {
        let filling = self.fill_left.is_some() || self.fill_right.is_some();
        if (l.is_empty() || r.is_empty()) && !filling {
            return Ok(());
        }
        let swapped = matches!(self.card, Cardinality::OneToMany(_));
        let ((many_side, many), (one_side, one)) = if swapped {
            ((rhs, r), (lhs, l))
        } else {
            ((lhs, l), (rhs, r))
        };
        let mut ones: HashMap<u32, (u32, Val)> = HashMap::with_capacity(one.len());
        for (k, v) in one {
            let sig = one_side.sigs[*k as usize];
            if let Some((dup, _)) = ones.get(&sig) {
                let side = if swapped { "left" } else { "right" };
                let mut pair = [
                    labelset::display(&one_side.labels[*k as usize]),
                    labelset::display(&one_side.labels[*dup as usize]),
                ];
                pair.sort();
                let matched = match &self.matching {
                    Matching::On(n) => {
                        let mut m = Vec::new();
                        labelset::keep(&one_side.labels[*k as usize], n, &mut m);
                        m
                    }
                    Matching::Ignoring(_) => interner.sig_labels[sig as usize].clone(),
                };
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    labelset::display(&matched),
                    pair[0],
                    pair[1]
                )));
            }
            ones.insert(sig, (*k, *v));
        }
        let mut matched: HashMap<u32, HashSet<Vec<u8>>> = HashMap::new();
        let mut one_to_one_seen: HashSet<u32> = HashSet::new();
        let mut ones_matched: HashSet<u32> = HashSet::new();
        for (mk, mv) in many {
            let sig = many_side.sigs[*mk as usize];
            let mv = many_side.sample(*mv);
            let Some((ok, ov)) = ones.get(&sig) else {
                // Filled: the "one" operand takes `fill_right`'s value (Prometheus applies the
                // fill values after swapping sides for group_right), and no labels from it.
                if let Some(f) = self.fill_right {
                    let f = Sample::Float(f.0);
                    let (fl, fr) = if swapped { (f, mv) } else { (mv, f) };
                    let labels = self.result_labels(&many_side.labels[*mk as usize], &[]);
                    self.push_result(fl, fr, &labels, t, out)?;
                }
                continue;
            };
            let ov = one_side.sample(*ov);
            ones_matched.insert(sig);
            // Ambiguous one-to-one matches fail even when the comparison filters them out.
            if self.card == Cardinality::OneToOne && !one_to_one_seen.insert(sig) {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            let (fl, fr) = if swapped { (ov, mv) } else { (mv, ov) };
            let Some((v, keep)) = elem_binop(self.op, fl, fr)? else {
                continue;
            };
            let v = if self.return_bool {
                Res::Float(if keep { 1.0 } else { 0.0 })
            } else if !keep {
                continue;
            } else {
                v
            };
            let labels = result_labels.entry((*mk, *ok)).or_insert_with(|| {
                self.result_labels(
                    &many_side.labels[*mk as usize],
                    &one_side.labels[*ok as usize],
                )
            });
            if self.card != Cardinality::OneToOne
                && !matched.entry(sig).or_default().insert(labels.clone())
            {
                return Err(Error::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            push_res(out, labels, t, v)?;
        }
        // Filled: "one" series no "many" series matched take `fill_left`'s value for the other
        // operand and carry their match-group labels.
        if let Some(f) = self.fill_left {
            for (ok, ov) in one {
                let sig = one_side.sigs[*ok as usize];
                if ones_matched.contains(&sig) || ones.get(&sig).is_none_or(|(k, _)| k != ok) {
                    continue;
                }
                let (ov, f) = (one_side.sample(*ov), Sample::Float(f.0));
                let (fl, fr) = if swapped { (ov, f) } else { (f, ov) };
                let labels = interner.sig_labels[sig as usize].clone();
                self.push_result(fl, fr, &labels, t, out)?;
            }
        }
        Ok(())
    }

    /// Applies the operator to a filled pair and pushes the result if it is kept.
    fn push_result(
        &self,
        fl: Sample<'_>,
        fr: Sample<'_>,
        labels: &[u8],
        t: i64,
        out: &mut SeriesOut,
    ) -> Result<()> {
        let Some((v, keep)) = elem_binop(self.op, fl, fr)? else {
            return Ok(());
        };
        if self.return_bool {
            out.push(labels, t, if keep { 1.0 } else { 0.0 });
        } else if keep {
            push_res(out, labels, t, v)?;
        }
        Ok(())
    }

    fn result_labels(&self, many: &[u8], one: &[u8]) -> Vec<u8> {
        let mut labels = if self.op.drops_name() || self.return_bool {
            labelset::mark_drop_name(many)
        } else {
            many.to_vec()
        };
        let include = match &self.card {
            Cardinality::OneToOne => {
                let mut out = Vec::new();
                match &self.matching {
                    Matching::On(n) => labelset::keep(&labels, n, &mut out),
                    Matching::Ignoring(n) => labelset::drop(&labels, n, &mut out),
                }
                return out;
            }
            Cardinality::ManyToOne(i) | Cardinality::OneToMany(i) => i,
            Cardinality::ManyToMany => return labels,
        };
        for name in include {
            let v = labelset::get(one, name).unwrap_or("").to_string();
            labels = labelset::set(&labels, name, &v);
        }
        labels
    }
}

fn push_res(out: &mut SeriesOut, labels: &[u8], t: i64, v: Res) -> Result<()> {
    match v {
        Res::Float(f) => {
            out.push(labels, t, f);
            Ok(())
        }
        Res::Hist(h) => out.push_hist(labels, t, h),
    }
}
