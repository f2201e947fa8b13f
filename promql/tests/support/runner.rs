//! Runs parsed test files against a fresh database and engine, as Prometheus's runner does:
//! lookback 5 m, default subquery step 1 m, left-open windows, times from the epoch. Loads
//! write floats and native histograms (`load_with_nhcb` adds the classic histograms as
//! custom-bucket ones, `nhcb.rs`); results are compared as in `compare.rs`. An error of an
//! operator not built yet is always a failure, so the pass counts measure what works.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr as PExpr};
use quiver_promql::series_desc::SequenceValue;
use quiver_promql::{Engine, EngineOptions, Error, Sample, Series, Value};
use quiver_storage::{Db, Labels, Options, WriteBatch};

use super::compare::{GotRow, Point, compare, float_eq, show_got};
use super::nhcb;
use super::testfile::{Command, Eval, EvalKind, Expected, Fail, Load, LoadSeries};

/// What happened to each eval of a file.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    /// Failed evals (and loads), with the reason.
    pub failed: Vec<String>,
}

impl Report {
    pub fn total(&self) -> usize {
        self.passed + self.failed.len()
    }
}

struct Context {
    _dir: tempfile::TempDir,
    engine: Engine,
    db: Arc<Db>,
}

async fn fresh() -> Context {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path().join("wal"), Arc::new(InMemory::new()));
    opts.retention_ms = i64::MAX / 4;
    let db = Db::open(opts).await.unwrap();
    let engine = Engine::new(
        db.clone(),
        EngineOptions {
            lookback: Duration::from_secs(300),
            subquery_step: Duration::from_secs(60),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(60),
            ..EngineOptions::default()
        },
    );
    Context {
        _dir: dir,
        engine,
        db,
    }
}

pub async fn run(commands: &[Command]) -> Report {
    let mut report = Report::default();
    let mut ctx = fresh().await;
    for c in commands {
        match c {
            Command::Clear => {
                ctx.db.close().await;
                ctx = fresh().await;
            }
            Command::Load(load) => {
                if let Err(msg) = append(&ctx.db, load).await {
                    report
                        .failed
                        .push(format!("line {}: load failed: {msg}", load.line));
                }
            }
            Command::Eval(e) => {
                let mut outcome = check(&ctx.engine, e).await;
                if outcome.is_ok() {
                    outcome = check_variants(&ctx.engine, e).await;
                }
                match outcome {
                    Ok(()) => report.passed += 1,
                    Err(msg) => report
                        .failed
                        .push(format!("line {}: {}: {msg}", e.line, e.expr)),
                }
            }
        }
    }
    ctx.db.close().await;
    report
}

/// Loads a `load` block's samples, and for `load_with_nhcb` its classic histograms as native
/// ones too. As in Prometheus, where the appender rolls back, one invalid histogram (or a
/// classic histogram that cannot be converted) loads nothing.
async fn append(db: &Db, load: &Load) -> Result<(), String> {
    let converted = if load.nhcb {
        nhcb::convert(&load.series)?
    } else {
        Vec::new()
    };
    let mut batch = WriteBatch::default();
    for s in load.series.iter().chain(&converted) {
        push_series(&mut batch, s)?;
    }
    db.append(batch).await.map_err(|e| e.to_string())
}

fn push_series(batch: &mut WriteBatch, s: &LoadSeries) -> Result<(), String> {
    let pairs: Vec<(&str, &str)> = s
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let idx = batch.push_series(Labels::from_validated(&pairs));
    for (t, v) in &s.samples {
        match v {
            SequenceValue::Float(f) => batch.push_sample(idx, *t, *f),
            SequenceValue::Histogram { h, .. } => {
                h.validate()
                    .map_err(|e| format!("invalid histogram at {t} ms: {e}"))?;
                batch.push_histogram(idx, *t, h.clone());
            }
            SequenceValue::Omitted => {}
        }
    }
    Ok(())
}

/// An error of an operator not built yet (for native histograms, or a function): a failure
/// even where the test expects an error, so the pass counts measure what works.
fn not_built(err: &Error) -> bool {
    err.to_string().contains("is not supported yet")
}

/// Prometheus's runner checks every instant eval twice more: as a range query from t-1m to
/// t+1m (the middle point must agree), and with `@ t` on every selector, evaluated at other
/// times (-10t, 0, t/5, t, 10t) — the answer must not change.
async fn check_variants(engine: &Engine, e: &Eval) -> Result<(), String> {
    let EvalKind::Instant(t) = e.kind else {
        return Ok(());
    };
    if e.fail.is_some()
        || matches!(
            e.expected,
            Expected::String(_) | Expected::RangeVector { .. }
        )
    {
        return Ok(());
    }
    let expr = quiver_promql::parse(&e.expr).map_err(|err| err.to_string())?;
    if !matches!(expr.value_type(), ValueType::Vector | ValueType::Scalar) {
        return Ok(());
    }
    let mut pinned = expr.clone();
    let mut unsafe_fn = false;
    pin_at(&mut pinned, t, &mut unsafe_fn);
    // Functions of the evaluation time itself answer differently at other steps by design.
    if !e.ordered && !unsafe_fn {
        let got = engine
            .range_expr(&expr, t - 60_000, t + 60_000, 60_000)
            .await
            .map_err(|err| format!("as a range query: unexpected error: {err}"))?;
        let middle: Vec<GotRow> = match got {
            Value::Matrix(m) => m
                .into_iter()
                .filter_map(|s| {
                    let p = point_at(&s, t)?;
                    Some((s.labels, vec![Some(p)]))
                })
                .collect(),
            other => return Err(format!("as a range query: got {other:?}")),
        };
        compare_expected(&e.expected, middle).map_err(|m| format!("as a range query: {m}"))?;
    }
    if unsafe_fn {
        return Ok(());
    }
    let times = if t == 0 {
        vec![0, 10, 100, 1000, -1000]
    } else {
        vec![-10 * t, 0, t / 5, t, 10 * t]
    };
    for at in times {
        let got = engine
            .instant_expr(&pinned, at)
            .await
            .map_err(|err| format!("with @ {t}ms at {at}ms: unexpected error: {err}"))?;
        let rows = match got {
            Value::Vector(v) => vector_rows(v),
            Value::Scalar { v, .. } => {
                if let Expected::Scalar(w) = e.expected
                    && !float_eq(w, v)
                {
                    return Err(format!("with @ at {at}ms: expected {w}, got {v}"));
                }
                continue;
            }
            other => return Err(format!("with @ at {at}ms: got {other:?}")),
        };
        compare_expected(&e.expected, rows).map_err(|m| format!("with @ at {at}ms: {m}"))?;
    }
    Ok(())
}

fn compare_expected(expected: &Expected, got: Vec<GotRow>) -> Result<(), String> {
    match expected {
        Expected::Series(want) => compare(want, &got, false),
        Expected::Scalar(w) => match got.as_slice() {
            [(l, v)]
                if l.is_empty() && matches!(v[0], Some(Point::Float(v)) if float_eq(*w, v)) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "expected scalar {w}, got {:?}",
                got.iter().map(show_got).collect::<Vec<_>>()
            )),
        },
        _ => Ok(()),
    }
}

/// An instant vector's samples as rows of one point.
fn vector_rows(v: Vec<Sample>) -> Vec<GotRow> {
    v.into_iter()
        .map(|s| {
            let p = match s.h {
                Some(h) => Point::Histogram(h),
                None => Point::Float(s.v),
            };
            (s.labels, vec![Some(p)])
        })
        .collect()
}

/// A matrix's series as rows of a point per `step` from `start`, floats and histograms
/// together.
fn matrix_rows(m: Vec<Series>, start: i64, step: i64) -> Vec<GotRow> {
    m.into_iter()
        .map(|s| {
            let mut pts: Vec<Option<Point>> = Vec::new();
            let floats = s.points.into_iter().map(|(t, v)| (t, Point::Float(v)));
            let histograms = s
                .histograms
                .into_iter()
                .map(|(t, h)| (t, Point::Histogram(h)));
            for (t, p) in floats.chain(histograms) {
                let k = ((t - start) / step) as usize;
                if pts.len() <= k {
                    pts.resize(k + 1, None);
                }
                pts[k] = Some(p);
            }
            (s.labels, pts)
        })
        .collect()
}

/// A series' point at `t`, float or histogram.
fn point_at(s: &Series, t: i64) -> Option<Point> {
    if let Some((_, v)) = s.points.iter().find(|p| p.0 == t) {
        return Some(Point::Float(*v));
    }
    let (_, h) = s.histograms.iter().find(|p| p.0 == t)?;
    Some(Point::Histogram(h.clone()))
}

/// Sets `@ t` on every selector and subquery that has none, outside subqueries that have
/// one; notes functions whose answer depends on the evaluation time itself.
fn pin_at(e: &mut PExpr, t: i64, unsafe_fn: &mut bool) {
    let at = || Some(AtModifier::At(to_system_time(t)));
    match e {
        PExpr::VectorSelector(vs) if vs.at.is_none() => vs.at = at(),
        PExpr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = at(),
        // Inside a subquery, which now has an `@` either way, selectors stay as they are.
        PExpr::Subquery(sq) if sq.at.is_none() => sq.at = at(),
        PExpr::Aggregate(a) => {
            pin_at(&mut a.expr, t, unsafe_fn);
            if let Some(p) = a.param.as_mut() {
                pin_at(p, t, unsafe_fn);
            }
        }
        PExpr::Unary(u) => pin_at(&mut u.expr, t, unsafe_fn),
        PExpr::Binary(b) => {
            pin_at(&mut b.lhs, t, unsafe_fn);
            pin_at(&mut b.rhs, t, unsafe_fn);
        }
        PExpr::Paren(p) => pin_at(&mut p.expr, t, unsafe_fn),
        PExpr::Call(c) => {
            if matches!(
                c.func.name,
                "days_in_month"
                    | "day_of_month"
                    | "day_of_week"
                    | "day_of_year"
                    | "hour"
                    | "minute"
                    | "month"
                    | "year"
                    | "predict_linear"
                    | "time"
                    | "timestamp"
                    | "step"
                    | "range"
                    | "start"
                    | "end"
            ) {
                *unsafe_fn = true;
            }
            for a in c.args.args.iter_mut() {
                pin_at(a, t, unsafe_fn);
            }
        }
        _ => {}
    }
}

fn to_system_time(ms: i64) -> std::time::SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}

async fn check(engine: &Engine, e: &Eval) -> Result<(), String> {
    let result = match e.kind {
        EvalKind::Instant(t) => engine.instant(&e.expr, t).await,
        EvalKind::Range { start, end, step } => engine.range(&e.expr, start, end, step).await,
    };
    if let Some(fail) = &e.fail {
        return match result {
            Ok(v) => Err(format!("expected an error, got {v:?}")),
            Err(err) if not_built(&err) => Err(format!("expected an error, got: {err}")),
            Err(err) => match fail {
                Fail::Any => Ok(()),
                Fail::Msg(m) if err.to_string() == *m => Ok(()),
                Fail::Regex(r)
                    if regex::Regex::new(r).is_ok_and(|re| re.is_match(&err.to_string())) =>
                {
                    Ok(())
                }
                _ => Err(format!("error {err:?} does not match {fail:?}")),
            },
        };
    }
    let value = result.map_err(|err| format!("unexpected error: {err}"))?;
    match (&e.expected, value, &e.kind) {
        (Expected::Scalar(want), Value::Scalar { v, .. }, _) => {
            if float_eq(*want, v) {
                Ok(())
            } else {
                Err(format!("expected scalar {want}, got {v}"))
            }
        }
        (Expected::String(want), Value::String { s, .. }, _) => {
            if *want == s {
                Ok(())
            } else {
                Err(format!("expected string {want:?}, got {s:?}"))
            }
        }
        (Expected::Series(want), Value::Vector(got), EvalKind::Instant(_)) => {
            compare(want, &vector_rows(got), e.ordered)
        }
        (Expected::Series(want), Value::Matrix(got), EvalKind::Range { start, step, .. }) => {
            compare(want, &matrix_rows(got, *start, *step), false)
        }
        (Expected::Series(want), Value::Scalar { v, .. }, EvalKind::Instant(_))
            if want.is_empty() =>
        {
            Err(format!("expected an empty vector, got scalar {v}"))
        }
        (
            Expected::RangeVector {
                start,
                step,
                series,
            },
            Value::Matrix(got),
            _,
        ) => compare(series, &matrix_rows(got, *start, *step), false),
        (want, got, _) => Err(format!("expected {want:?}, got {got:?}")),
    }
}
