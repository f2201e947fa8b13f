//! Runs parsed test files against a fresh database and engine, as Prometheus's runner does:
//! lookback 5 m, default subquery step 1 m, left-open windows, times from the epoch.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr as PExpr};
use quiver_promql::{Engine, EngineOptions, Value};
use quiver_storage::{Db, Labels, Options, WriteBatch};

use super::testfile::{Command, Eval, EvalKind, Expected, Fail, STALE_NAN, SeriesRow};

/// What happened to each eval of a file.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: Vec<String>,
    /// Evals left out, with the reason.
    pub skipped: Vec<String>,
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
    native: Vec<String>,
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
        native: Vec::new(),
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
                let mut batch = WriteBatch::default();
                for s in &load.series {
                    let pairs: Vec<(&str, &str)> = s
                        .labels
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let idx = batch.push_series(Labels::from_validated(&pairs));
                    for (t, v) in &s.samples {
                        batch.push_sample(idx, *t, *v);
                    }
                }
                ctx.native.extend(load.native_histograms.iter().cloned());
                if let Err(e) = ctx.db.append(batch).await {
                    report
                        .failed
                        .push(format!("line {}: load failed: {e}", load.line));
                }
            }
            Command::Eval(e) => {
                if let Some(why) = skip_reason(e, &ctx.native) {
                    report.skipped.push(format!("line {}: {why}", e.line));
                    continue;
                }
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

fn skip_reason(e: &Eval, native: &[String]) -> Option<String> {
    if e.native_output {
        return Some("native histogram output".into());
    }
    if !native.is_empty() {
        let touches = native
            .iter()
            .any(|n| !n.is_empty() && e.expr.contains(n.as_str()))
            || e.expr.contains("{__name__")
            || nameless_selector(&e.expr);
        if touches {
            return Some("touches native histogram series".into());
        }
    }
    None
}

/// Whether the expression has a selector without a metric name (`{job="x"}`), which could
/// select native-histogram series.
fn nameless_selector(expr: &str) -> bool {
    let b = expr.as_bytes();
    b.iter().enumerate().any(|(i, c)| {
        *c == b'{' && (i == 0 || matches!(b[i - 1], b'(' | b' ' | b',' | b'-' | b'+' | b'*' | b'/'))
    })
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
        let middle: Vec<SeriesRow> = match got {
            Value::Matrix(m) => m
                .into_iter()
                .filter_map(|s| {
                    let v = s.points.iter().find(|p| p.0 == t)?.1;
                    Some((s.labels, vec![Some(v)]))
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
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, vec![Some(s.v)])).collect(),
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

fn compare_expected(expected: &Expected, got: Vec<SeriesRow>) -> Result<(), String> {
    match expected {
        Expected::Series(want) => compare(want, &got, false),
        Expected::Scalar(w) => match got.as_slice() {
            [(l, v)] if l.is_empty() && v[0].is_some_and(|v| float_eq(*w, v)) => Ok(()),
            _ => Err(format!("expected scalar {w}, got {got:?}")),
        },
        _ => Ok(()),
    }
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
            let got: Vec<SeriesRow> = got
                .into_iter()
                .map(|s| (s.labels, vec![Some(s.v)]))
                .collect();
            compare(want, &got, e.ordered)
        }
        (Expected::Series(want), Value::Matrix(got), EvalKind::Range { start, end, step }) => {
            let n = ((end - start) / step + 1) as usize;
            let got: Vec<_> = got
                .into_iter()
                .map(|s| {
                    let mut pts = vec![None; n];
                    for (t, v) in s.points {
                        pts[((t - start) / step) as usize] = Some(v);
                    }
                    (s.labels, pts)
                })
                .collect();
            let want: Vec<_> = want
                .iter()
                .map(|(l, v)| {
                    let mut v = v.clone();
                    v.resize(n, None);
                    (l.clone(), v)
                })
                .collect();
            compare(&want, &got, false)
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
        ) => {
            let got: Vec<_> = got
                .into_iter()
                .map(|s| {
                    let mut pts: Vec<Option<f64>> = Vec::new();
                    for (t, v) in s.points {
                        let k = ((t - start) / step) as usize;
                        if pts.len() <= k {
                            pts.resize(k + 1, None);
                        }
                        pts[k] = Some(v);
                    }
                    (s.labels, pts)
                })
                .collect();
            compare(series, &got, false)
        }
        (want, got, _) => Err(format!("expected {want:?}, got {got:?}")),
    }
}

type Rows = [SeriesRow];

fn compare(want: &Rows, got: &Rows, ordered: bool) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            want.len(),
            got.len(),
            got.iter().map(show).collect::<Vec<_>>()
        ));
    }
    for (i, w) in want.iter().enumerate() {
        let g = if ordered {
            Some(&got[i]).filter(|g| g.0 == w.0)
        } else {
            got.iter().find(|g| g.0 == w.0)
        };
        let Some(g) = g else {
            return Err(format!(
                "expected {} not found{}; got {:?}",
                show(w),
                if ordered { " at its position" } else { "" },
                got.iter().map(show).collect::<Vec<_>>()
            ));
        };
        let mut gv = g.1.clone();
        let mut wv = w.1.clone();
        let n = gv.len().max(wv.len());
        gv.resize(n, None);
        wv.resize(n, None);
        let same = wv.iter().zip(&gv).all(|(a, b)| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => float_eq(*a, *b),
            _ => false,
        });
        if !same {
            return Err(format!("expected {}, got {}", show(w), show(g)));
        }
    }
    Ok(())
}

fn show(s: &SeriesRow) -> String {
    let labels: Vec<String> = s.0.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    let values: Vec<String> =
        s.1.iter()
            .map(|v| v.map_or("_".to_string(), |v| v.to_string()))
            .collect();
    format!("{{{}}} {}", labels.join(","), values.join(" "))
}

fn float_eq(a: f64, b: f64) -> bool {
    if a.to_bits() == STALE_NAN || b.to_bits() == STALE_NAN {
        return a.to_bits() == b.to_bits();
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    (a - b).abs() / (a.abs() + b.abs()) < 1e-6
}
