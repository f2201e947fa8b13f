//! Rules: unit tests in `promtool test rules`'s format (`tests/rules/*.test.yml`, run here by
//! Quiver's rule engine and, as an interop test, by the real `promtool`), and the rules as the
//! server runs them: schedule, API shapes, reloads, SQL rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quiver::config::Config;
use quiver::rules::alerting::AlertState;
use quiver::rules::group::{EvalContext, RuleBody};
use quiver::rules::manager;
use quiver_promql::series_desc::{STALE_NAN, expand_values, parse_labels};
use quiver_promql::{Engine, EngineOptions, Value as PromValue};
use quiver_storage::{Db, LabelLimits, Labels, Options, WriteBatch};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct UnitTestFile {
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
struct ExpSample {
    labels: String,
    value: f64,
}

fn duration_ms(s: &str) -> i64 {
    quiver::api::params::parse_prometheus_duration(s)
        .unwrap_or_else(|| panic!("not a duration: {s}"))
}

/// Labels and annotations of the firing alerts of a rule, sorted.
type FiringAlerts = Vec<(BTreeMap<String, String>, BTreeMap<String, String>)>;

/// Runs one unit-test file with Quiver's rule engine, as `promtool test rules` runs it: per test
/// group, a fresh database with the input series, every group evaluated at each
/// `evaluation_interval` from 0 to the last `eval_time`, firing alerts compared at the
/// evaluation that covers each alert test's time, and PromQL tests run at the end. Answers the
/// failures.
pub async fn run_unit_test_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let file: UnitTestFile =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().unwrap();
    let eval_interval = duration_ms(file.evaluation_interval.as_deref().unwrap_or("1m"));
    let mut failures = Vec::new();
    for (n, tg) in file.tests.iter().enumerate() {
        let name = tg.name.clone().unwrap_or_else(|| format!("test {n}"));
        let fail = |failures: &mut Vec<String>, m: String| {
            failures.push(format!("{}: {name}: {m}", path.display()))
        };
        let tmp = tempfile::tempdir().unwrap();
        let db = open_db(tmp.path()).await;
        let interval = tg
            .interval
            .as_deref()
            .map(duration_ms)
            .unwrap_or(eval_interval);
        load_series(&db, &tg.input_series, interval).await;
        let engine = Arc::new(Engine::new(db.clone(), EngineOptions::default()));
        // The rule files, with this file's evaluation interval as the global default.
        let files: Vec<String> = file
            .rule_files
            .iter()
            .map(|f| dir.join(f).display().to_string())
            .collect();
        let yaml = format!(
            "global:\n  evaluation_interval: {}ms\nrule_files: {}\n",
            eval_interval,
            serde_json::to_string(&files).unwrap()
        );
        let config = Config::from_yaml("unit-test.yml", &yaml).unwrap();
        let loaded = manager::load(&config).unwrap_or_else(|e| panic!("{e}"));
        let mut groups = manager::build(&loaded, &config);
        if !file.group_eval_order.is_empty() {
            groups.sort_by_key(|g| {
                file.group_eval_order
                    .iter()
                    .position(|n| *n == g.name)
                    .unwrap_or(usize::MAX)
            });
        }
        for g in &groups {
            for r in &g.rules {
                if let RuleBody::Alerting(a) = &r.body {
                    a.set_restored();
                }
            }
        }
        let ctx = EvalContext {
            db: db.clone(),
            engine: engine.clone(),
            external_labels: tg.external_labels.clone(),
            external_url: tg.external_url.clone().unwrap_or_default(),
            notify: None,
            resend_delay: Duration::from_secs(60),
            for_outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
        };
        let mut alert_times: Vec<i64> = tg
            .alert_rule_test
            .iter()
            .map(|t| duration_ms(&t.eval_time))
            .collect();
        alert_times.sort();
        alert_times.dedup();
        let max_t = alert_times
            .iter()
            .copied()
            .chain(
                tg.promql_expr_test
                    .iter()
                    .map(|t| duration_ms(&t.eval_time)),
            )
            .max()
            .unwrap_or(0);
        let mut ts = 0;
        while ts <= max_t {
            for g in &groups {
                g.evaluate(ts, &ctx).await;
                for r in &g.rules {
                    if let Some(e) = r.status().last_error {
                        fail(&mut failures, format!("rule {} at {ts} ms: {e}", r.name()));
                    }
                }
            }
            for &t in alert_times
                .iter()
                .filter(|t| ts <= **t && **t < ts + eval_interval)
            {
                for test in tg
                    .alert_rule_test
                    .iter()
                    .filter(|a| duration_ms(&a.eval_time) == t)
                {
                    let mut got: FiringAlerts = Vec::new();
                    for g in &groups {
                        for r in &g.rules {
                            if let RuleBody::Alerting(a) = &r.body
                                && a.name == test.alertname
                            {
                                got.extend(
                                    a.active_alerts()
                                        .into_iter()
                                        .filter(|x| x.state == AlertState::Firing)
                                        .map(|x| (x.labels, x.annotations)),
                                );
                            }
                        }
                    }
                    let mut want: FiringAlerts = test
                        .exp_alerts
                        .iter()
                        .map(|e| {
                            let mut l = e.exp_labels.clone();
                            l.insert("alertname".into(), test.alertname.clone());
                            (l, e.exp_annotations.clone())
                        })
                        .collect();
                    got.sort();
                    want.sort();
                    if got != want {
                        fail(
                            &mut failures,
                            format!(
                                "alert {} at {}: expected {want:?}, got {got:?}",
                                test.alertname, test.eval_time
                            ),
                        );
                    }
                }
            }
            ts += eval_interval;
        }
        for test in &tg.promql_expr_test {
            let t = duration_ms(&test.eval_time);
            let got: BTreeSet<(Vec<(String, String)>, u64)> =
                match engine.instant(&test.expr, t).await {
                    Ok(PromValue::Vector(v)) => {
                        v.into_iter().map(|s| (s.labels, s.v.to_bits())).collect()
                    }
                    Ok(PromValue::Scalar { v, .. }) => [(Vec::new(), v.to_bits())].into(),
                    Ok(other) => {
                        fail(
                            &mut failures,
                            format!("{}: not a vector: {other:?}", test.expr),
                        );
                        continue;
                    }
                    Err(e) => {
                        fail(&mut failures, format!("{}: {e}", test.expr));
                        continue;
                    }
                };
            let want: BTreeSet<(Vec<(String, String)>, u64)> = test
                .exp_samples
                .iter()
                .map(|s| (parse_labels(&s.labels).unwrap().0, s.value.to_bits()))
                .collect();
            if got != want {
                let show = |s: &BTreeSet<(Vec<(String, String)>, u64)>| -> Vec<(Vec<(String, String)>, f64)> {
                    s.iter().map(|(l, v)| (l.clone(), f64::from_bits(*v))).collect()
                };
                fail(
                    &mut failures,
                    format!(
                        "{} at {}: expected {:?}, got {:?}",
                        test.expr,
                        test.eval_time,
                        show(&want),
                        show(&got)
                    ),
                );
            }
        }
    }
    failures
}

async fn open_db(dir: &Path) -> Arc<Db> {
    let blocks = dir.join("blocks");
    std::fs::create_dir_all(&blocks).unwrap();
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&blocks).unwrap());
    let mut o = Options::new(dir.join("wal"), store);
    o.retention_ms = i64::MAX / 4;
    Db::open(o).await.unwrap()
}

/// The input series, one sample per `interval` from 0 (`_` skips one, `stale` marks it stale).
async fn load_series(db: &Db, series: &[InputSeries], interval: i64) {
    let mut batch = WriteBatch::default();
    for s in series {
        let (labels, rest) = parse_labels(&s.series).unwrap();
        assert!(rest.is_empty(), "{}: trailing {rest:?}", s.series);
        let labels = Labels::try_from_pairs(
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &LabelLimits::default(),
        )
        .unwrap();
        let i = batch.push_series(labels);
        for (k, v) in expand_values(&s.values).unwrap().into_iter().enumerate() {
            if let Some(v) = v {
                let v = if v.to_bits() == STALE_NAN {
                    f64::from_bits(STALE_NAN)
                } else {
                    v
                };
                batch.push_sample(i, k as i64 * interval, v);
            }
        }
    }
    if batch.num_samples() > 0 {
        db.append(batch).await.unwrap();
    }
}

fn unit_test_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_unit_tests_pass_with_quivers_rule_engine() {
    let mut files = unit_test_files("tests/rules");
    files.extend(unit_test_files("tests/rules/quiver-only"));
    assert!(files.len() >= 2, "{files:?}");
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_unit_test_file(f).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same files, given to the real `promtool test rules` (Prometheus 2.42): the recorded
/// series and alert states Quiver computes are Prometheus's.
#[test]
#[ignore = "interop: needs promtool (Debian package prometheus)"]
fn promtool_passes_the_same_rule_unit_tests() {
    let files = unit_test_files("tests/rules");
    assert!(!files.is_empty());
    for f in files {
        let out = std::process::Command::new("promtool")
            .arg("test")
            .arg("rules")
            .arg(&f)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool test rules {}:\n{}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
