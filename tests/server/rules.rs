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
use serde_json::{Value, json};

use super::support::{
    TestServer, client, eventually, get_json, get_text, import, post, query, sql_rows,
    start_with_files,
};

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
    quiver::time::parse_prometheus_duration(s).unwrap_or_else(|| panic!("not a duration: {s}"))
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

const FAST_RULES: &str = r#"
groups:
  - name: fast
    interval: 1s
    rules:
      - record: job:gpu_util:sum
        expr: sum by (job) (gpu_util)
      - alert: Hot
        expr: gpu_util > 50
        labels:
          severity: page
        annotations:
          summary: 'GPU {{ $labels.gpu }} at {{ $value }}'
      - alert: Never
        expr: gpu_util > 1000
        for: 5m
"#;

const RULES_CONFIG: &str =
    "global:\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\nscrape_configs: []\n";

async fn rules_api(s: &TestServer, params: &str) -> Value {
    let (code, v) = get_json(&s.url(&format!("/api/v1/rules{params}"))).await;
    assert_eq!(code, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_run_on_their_schedule_and_show_in_the_api_sql_and_metrics() {
    let (s, _) = start_with_files(RULES_CONFIG, &[("rules.yml", FAST_RULES)], &[]).await;
    import(
        &s,
        "gpu_util{job=\"train\",gpu=\"0\"} 90\ngpu_util{job=\"train\",gpu=\"1\"} 10\n",
    )
    .await;
    eventually("the recorded series", 20, || async {
        query(&s, "job:gpu_util:sum")
            .await
            .first()
            .map(|r| r["value"][1].clone())
            == Some(json!("100"))
    })
    .await;

    // /api/v1/rules: Prometheus's shapes.
    let v = rules_api(&s, "").await;
    let g = &v["data"]["groups"][0];
    assert_eq!(g["name"], "fast");
    assert!(g["file"].as_str().unwrap().ends_with("rules.yml"), "{g}");
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["limit"], 0);
    assert_ne!(g["lastEvaluation"], "0001-01-01T00:00:00Z");
    let rules = g["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[0]["name"], "job:gpu_util:sum");
    assert_eq!(rules[0]["query"], "sum by (job) (gpu_util)");
    assert_eq!(rules[0]["health"], "ok");
    let hot = &rules[1];
    assert_eq!(hot["type"], "alerting");
    assert_eq!(hot["state"], "firing");
    assert_eq!(hot["duration"], 0.0);
    assert_eq!(hot["labels"], json!({"severity": "page"}));
    assert_eq!(
        hot["annotations"]["summary"],
        "GPU {{ $labels.gpu }} at {{ $value }}"
    );
    let alert = &hot["alerts"][0];
    assert_eq!(
        alert["labels"],
        json!({"alertname": "Hot", "gpu": "0", "job": "train", "severity": "page"})
    );
    assert_eq!(alert["annotations"]["summary"], "GPU 0 at 90");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["value"], "9e+01");
    assert!(
        alert["activeAt"].as_str().unwrap().ends_with('Z'),
        "{alert}"
    );
    assert_eq!(rules[2]["state"], "inactive");
    assert_eq!(rules[2]["duration"], 300.0);

    // Filters.
    let only = |v: &Value| -> Vec<String> {
        v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        only(&rules_api(&s, "?type=record").await),
        ["job:gpu_util:sum"]
    );
    assert_eq!(only(&rules_api(&s, "?type=alert").await), ["Hot", "Never"]);
    assert_eq!(only(&rules_api(&s, "?rule_name[]=Never").await), ["Never"]);
    let v = rules_api(&s, "?type=alert&exclude_alerts=true").await;
    assert_eq!(v["data"]["groups"][0]["rules"][0]["alerts"], json!([]));
    let (code, v) = get_json(&s.url("/api/v1/rules?type=bogus")).await;
    assert_eq!((code, v["errorType"].as_str()), (400, Some("bad_data")));

    // /api/v1/alerts and /api/v1/alertmanagers.
    let (_, v) = get_json(&s.url("/api/v1/alerts")).await;
    let alerts = v["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["labels"]["alertname"], "Hot");
    let (_, v) = get_json(&s.url("/api/v1/alertmanagers")).await;
    assert_eq!(
        v["data"],
        json!({"activeAlertmanagers": [], "droppedAlertmanagers": []})
    );

    // ALERTS as a series, the recorded series as a SQL table, the rules as system tables.
    // (ALERTS is written from the evaluation after `for` state was restored: the second.)
    eventually("the ALERTS series", 20, || async {
        query(&s, "ALERTS{alertstate=\"firing\"}").await.len() == 1
    })
    .await;
    let rows = sql_rows(
        &s,
        "SELECT job, value FROM metrics.\"job:gpu_util:sum\" ORDER BY timestamp DESC LIMIT 1",
    )
    .await;
    assert_eq!(rows[0], json!(["train", 100.0]));
    let rows = sql_rows(
        &s,
        "SELECT rule_name, type, health, state FROM system.rules ORDER BY rule_name",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            json!(["Hot", "alerting", "ok", "firing"]),
            json!(["Never", "alerting", "ok", "inactive"]),
            json!(["job:gpu_util:sum", "recording", "ok", null]),
        ]
    );
    let rows = sql_rows(
        &s,
        "SELECT alertname, labels['gpu'], state, value FROM system.alerts",
    )
    .await;
    assert_eq!(rows, vec![json!(["Hot", "0", "firing", 90.0])]);

    // Quiver's own metrics count the evaluations.
    let metrics = get_text(&s.url("/metrics")).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("quiver_rule_evaluations_total{") && l.contains(";fast\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        line.split(' ').nth(1).unwrap().parse::<f64>().unwrap() >= 1.0,
        "{line}"
    );
    s.stop().await;
}

/// A server (reloads enabled) running `FAST_RULES` over a GPU's utilization, once its first
/// recorded series is there; and its config file.
async fn running_fast_rules() -> (TestServer, PathBuf) {
    let (s, config) = start_with_files(
        RULES_CONFIG,
        &[("rules.yml", FAST_RULES)],
        &["--web.enable-lifecycle"],
    )
    .await;
    import(&s, "gpu_util{job=\"train\",gpu=\"0\"} 90\n").await;
    eventually("the recorded series", 20, || async {
        !query(&s, "job:gpu_util:sum").await.is_empty()
    })
    .await;
    (s, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_file_is_refused_on_reload_and_the_running_rules_stay() {
    let (s, config) = running_fast_rules().await;
    let rules_file = config.parent().unwrap().join("rules.yml");
    std::fs::write(
        &rules_file,
        "groups:\n  - name: fast\n    rules:\n      - record: job:gpu_util:sum\n        expr: sum by (job (gpu_util)\n",
    )
    .unwrap();
    let (code, body) = post(&s.url("/-/reload"), vec![], &[]).await;
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("rules.yml:5:1"), "{body}");
    assert!(
        body.contains("group \"fast\", rule 1 (record \"job:gpu_util:sum\"): expr"),
        "{body}"
    );
    let v = rules_api(&s, "").await;
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 3);
    let metrics = get_text(&s.url("/metrics")).await;
    assert!(
        metrics.contains("quiver_config_last_reload_successful 0"),
        "{metrics}"
    );

    // A good file replaces the rules; the recording rule that is gone leaves stale series.
    std::fs::write(
        &rules_file,
        "groups:\n  - name: fast\n    interval: 1s\n    rules:\n      - record: job:gpu_util:max\n        expr: max by (job) (gpu_util)\n",
    )
    .unwrap();
    let (code, body) = post(&s.url("/-/reload"), vec![], &[]).await;
    assert_eq!(code, 200, "{body}");
    eventually("the new rule's series", 20, || async {
        !query(&s, "job:gpu_util:max").await.is_empty()
    })
    .await;
    let v = rules_api(&s, "").await;
    assert_eq!(
        v["data"]["groups"][0]["rules"][0]["name"],
        "job:gpu_util:max"
    );
    // The rule that went away got staleness markers at the group's next evaluation (without
    // them its series would answer for 5 more minutes).
    assert!(query(&s, "job:gpu_util:sum").await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_goes_away_marks_its_series_stale() {
    let (s, config) = running_fast_rules().await;
    std::fs::write(config.parent().unwrap().join("rules.yml"), "groups: []\n").unwrap();
    let (code, body) = post(&s.url("/-/reload"), vec![], &[]).await;
    assert_eq!(code, 200, "{body}");
    // Without the staleness marker the series would answer for 5 more minutes.
    assert!(query(&s, "job:gpu_util:sum").await.is_empty());
    assert!(query(&s, "ALERTS").await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_whose_query_times_out_shows_the_error_and_the_others_go_on() {
    let rules = r#"
groups:
  - name: mixed
    interval: 1s
    rules:
      - record: slow
        expr: count_over_time(vector(1)[30d:1s])
      - record: quick
        expr: vector(1)
"#;
    let (s, _) = start_with_files(
        RULES_CONFIG,
        &[("rules.yml", rules)],
        &["--query.timeout=100ms"],
    )
    .await;
    eventually("both rules evaluated", 20, || async {
        let v = rules_api(&s, "").await;
        let r = &v["data"]["groups"][0]["rules"];
        r[0]["health"] == "err" && r[1]["health"] == "ok"
    })
    .await;
    let v = rules_api(&s, "").await;
    let slow = &v["data"]["groups"][0]["rules"][0];
    assert!(
        slow["lastError"].as_str().unwrap().contains("timed out")
            || slow["lastError"].as_str().unwrap().contains("timeout"),
        "{slow}"
    );
    assert!(!query(&s, "quick").await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_state_is_restored_after_a_restart() {
    let rules = r#"
groups:
  - name: slow-to-fire
    interval: 1s
    rules:
      - alert: Sustained
        expr: vector(1)
        for: 8s
"#;
    let flags = [
        "--rules.alert.for-grace-period=1s",
        "--storage.retention.time=100y",
    ];
    let (s, config) = start_with_files(RULES_CONFIG, &[("rules.yml", rules)], &flags).await;
    let active_at = || async {
        let (_, v) = get_json(&s.url("/api/v1/alerts")).await;
        v["data"]["alerts"][0]["activeAt"]
            .as_str()
            .map(str::to_string)
    };
    eventually("a pending alert", 20, || async {
        active_at().await.is_some()
    })
    .await;
    let first = active_at().await.unwrap();
    // Pending for a few evaluations (ALERTS_FOR_STATE written), then a restart.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (_, v) = get_json(&s.url("/api/v1/alerts")).await;
    assert_eq!(v["data"]["alerts"][0]["state"], "pending");
    let dir = s.stop().await;
    let cfg = Config::load(Some(&config)).unwrap();
    let flag = format!("--config.file={}", config.display());
    let mut all = vec![flag.as_str()];
    all.extend_from_slice(&flags);
    let restarted_at = std::time::SystemTime::now();
    let s = TestServer::start_with_config(dir, &all, cfg).await;
    let active_at = || async {
        let (_, v) = get_json(&s.url("/api/v1/alerts")).await;
        v["data"]["alerts"][0]["activeAt"]
            .as_str()
            .map(str::to_string)
    };
    eventually("the alert again", 20, || async {
        active_at().await.is_some()
    })
    .await;
    // Restored: active before the restart (shifted by the time Quiver was down), not from the
    // first evaluation after it.
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    let restored = parse(&active_at().await.unwrap());
    let restart_ms = chrono::DateTime::<chrono::Utc>::from(restarted_at).timestamp_millis();
    assert!(restored > parse(&first), "{restored} vs {first}");
    assert!(
        restored < restart_ms,
        "active at {restored}, restarted at {restart_ms}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_rules_append_their_answers_to_a_table_that_survives_a_restart() {
    let config = "global:\n  evaluation_interval: 1s\nscrape_configs: []\nsql_rules:\n  - name: gpu_summary\n    interval: 1s\n    mode: append\n    query: SELECT gpu, max(value) AS peak FROM metrics.gpu_util GROUP BY gpu\n  - name: latest\n    interval: 1s\n    query: SELECT count(*) AS n FROM samples\n";
    let (s, path) = start_with_files(config, &[], &["--storage.retention.time=100y"]).await;
    import(&s, "gpu_util{gpu=\"0\"} 90\ngpu_util{gpu=\"1\"} 70\n").await;
    // The table appears with the first answer (before the import, the query fails: no
    // metrics.gpu_util yet).
    eventually("two evaluations appended", 20, || async {
        let r = client()
            .get(s.url("/api/v1/sql"))
            .query(&[(
                "query",
                "SELECT count(DISTINCT evaluated_at) FROM rules.gpu_summary",
            )])
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        v["data"]["rows"][0][0].as_i64().unwrap_or(0) >= 2
    })
    .await;
    let rows = sql_rows(&s, "SELECT gpu, peak FROM rules.gpu_summary WHERE evaluated_at = (SELECT max(evaluated_at) FROM rules.gpu_summary) ORDER BY gpu").await;
    assert_eq!(rows, vec![json!(["0", 90.0]), json!(["1", 70.0])]);
    // Replace mode: one answer.
    let rows = sql_rows(&s, "SELECT count(*) FROM rules.latest").await;
    assert_eq!(rows[0][0], 1);
    let rows = sql_rows(
        &s,
        "SELECT rule_name, type, health FROM system.rules ORDER BY rule_name",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            json!(["gpu_summary", "sql", "ok"]),
            json!(["latest", "sql", "ok"])
        ]
    );
    let before = sql_rows(&s, "SELECT count(*) FROM rules.gpu_summary").await[0][0]
        .as_i64()
        .unwrap();

    // After a restart the table is read back from its Parquet file, then grows again.
    let dir = s.stop().await;
    let cfg = Config::load(Some(&path)).unwrap();
    let flag = format!("--config.file={}", path.display());
    let s =
        TestServer::start_with_config(dir, &[&flag, "--storage.retention.time=100y"], cfg).await;
    let after = sql_rows(&s, "SELECT count(*) FROM rules.gpu_summary").await[0][0]
        .as_i64()
        .unwrap();
    assert!(after >= before, "{after} < {before}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_rules_store_native_histogram_results() {
    use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram};
    use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
    let (s, _config) = start_with_files(
        RULES_CONFIG,
        &[(
            "rules.yml",
            "groups:\n  - name: h\n    interval: 1s\n    rules:\n      - record: job:ttft:sum\n        expr: sum by (job) (ttft_seconds)\n",
        )],
        &[],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let series = |gpu: &str, n: u64| {
        let mut ts = TimeSeries::from_pairs(
            &[("__name__", "ttft_seconds"), ("job", "vllm"), ("gpu", gpu)],
            &[],
        );
        ts.histograms = vec![Histogram {
            count: Some(Count::CountInt(n)),
            sum: n as f64,
            schema: 0,
            positive_spans: vec![BucketSpan {
                offset: 1,
                length: 1,
            }],
            positive_deltas: vec![n as i64],
            timestamp: now,
            ..Default::default()
        }];
        ts
    };
    let body = encode(&WriteRequest {
        timeseries: vec![series("0", 3), series("1", 4)],
    });
    let (code, text) = post(&s.url("/api/v1/write"), body, &super::support::RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");
    // The rule's result is a histogram series of its own: its count is the sum's.
    eventually("the recorded histogram", 20, || async {
        query(&s, "histogram_count(job:ttft:sum)")
            .await
            .first()
            .is_some_and(|r| r["value"][1] == "7")
    })
    .await;
    let recorded = query(&s, "job:ttft:sum").await;
    assert_eq!(recorded[0]["metric"]["job"], "vllm", "{recorded:?}");
    assert_eq!(recorded[0]["histogram"][1]["sum"], "7", "{recorded:?}");
    s.stop().await;
}
