//! Notifications: alerts reach Alertmanager's API v2 with Prometheus's fields (external labels,
//! relabeling, `startsAt`/`endsAt`/`generatorURL`), are re-sent while firing and sent once
//! resolved; they wait in a bounded queue while Alertmanager is down; and a real Alertmanager
//! shows them firing, then resolved.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::post as post_route;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::support::{
    client, eventually, free_port, get_json, get_text, import, start_with_files, which,
};

/// An Alertmanager stand-in on `addr` that keeps every alert posted to it.
async fn receiver_on(listener: tokio::net::TcpListener) -> Arc<Mutex<Vec<Value>>> {
    let got: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = Router::new().route(
        "/api/v2/alerts",
        post_route(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let alerts: Vec<Value> = serde_json::from_slice(&body).unwrap();
                keep.lock().extend(alerts);
                ""
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    got
}

fn config(am: &str) -> String {
    format!(
        r#"global:
  evaluation_interval: 1s
  external_labels:
    cluster: eu1
rule_files: ['rules.yml']
scrape_configs: []
alerting:
  alert_relabel_configs:
    - source_labels: [severity]
      regex: none
      action: drop
  alertmanagers:
    - static_configs:
        - targets: ['{am}']
"#
    )
}

const RULES: &str = r#"
groups:
  - name: gpu
    interval: 1s
    rules:
      - alert: Hot
        expr: gpu_util > 50
        labels:
          severity: page
        annotations:
          summary: 'GPU {{ $labels.gpu }} at {{ $value }}'
      - alert: Quiet
        expr: gpu_util > 50
        labels:
          severity: none
"#;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

fn posts_of<'a>(got: &'a [Value], alertname: &str) -> Vec<&'a Value> {
    got.iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .collect()
}

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_with_prometheus_fields_and_resolve() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let am = listener.local_addr().unwrap().to_string();
    let got = receiver_on(listener).await;
    let (s, _) = start_with_files(
        &config(&am),
        &[("rules.yml", RULES)],
        &[
            "--rules.alert.resend-delay=1s",
            "--web.external-url=http://quiver.example:9090/",
        ],
    )
    .await;
    import(&s, "gpu_util{gpu=\"0\"} 90\n").await;
    // Firing alerts are re-sent every resend delay (1 s here).
    eventually("two sends of Hot", 20, || async {
        posts_of(&got.lock(), "Hot").len() >= 2
    })
    .await;
    let first = posts_of(&got.lock(), "Hot")[0].clone();
    assert_eq!(
        first["labels"],
        json!({"alertname": "Hot", "cluster": "eu1", "gpu": "0", "severity": "page"})
    );
    assert_eq!(first["annotations"], json!({"summary": "GPU 0 at 90"}));
    assert_eq!(
        first["generatorURL"],
        "http://quiver.example:9090/graph?g0.expr=gpu_util+%3E+50&g0.tab=1"
    );
    let (starts, ends) = (millis(&first["startsAt"]), millis(&first["endsAt"]));
    // Valid for four times the larger of the resend delay and the interval.
    assert_eq!(ends - starts, 4000, "{first}");
    assert!(first["startsAt"].as_str().unwrap().ends_with('Z'));
    // Relabeling dropped the other alert.
    assert!(posts_of(&got.lock(), "Quiet").is_empty());
    let (_, v) = get_json(&s.url("/api/v1/alertmanagers")).await;
    assert_eq!(
        v["data"]["activeAlertmanagers"],
        json!([{"url": format!("http://{am}/api/v2/alerts")}])
    );

    // Resolved: sent once more with endsAt at the resolving evaluation.
    import(&s, "gpu_util{gpu=\"0\"} 10\n").await;
    let resolved_after = chrono::Utc::now().timestamp_millis() - 1000;
    eventually("Hot sent as resolved", 20, || async {
        posts_of(&got.lock(), "Hot").iter().any(|a| {
            millis(&a["endsAt"]) <= chrono::Utc::now().timestamp_millis()
                && millis(&a["endsAt"]) >= resolved_after
        })
    })
    .await;
    let metrics = get_text(&s.url("/metrics")).await;
    assert!(
        metric(&metrics, "quiver_notifications_sent_total") >= 3.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "quiver_notifications_dropped_total") >= 1.0,
        "Quiet dropped: {metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_wait_in_a_bounded_queue_while_alertmanager_is_down() {
    // An address nothing listens on yet.
    let am: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (s, _) = start_with_files(
        &config(&am.to_string()),
        &[("rules.yml", RULES)],
        &[
            "--rules.alert.resend-delay=1s",
            "--alertmanager.notification-queue-capacity=2",
        ],
    )
    .await;
    import(
        &s,
        "gpu_util{gpu=\"0\"} 90\ngpu_util{gpu=\"1\"} 91\ngpu_util{gpu=\"2\"} 92\n",
    )
    .await;
    eventually("failed sends and a full queue", 20, || async {
        let m = get_text(&s.url("/metrics")).await;
        metric(&m, "quiver_notifications_errors_total") >= 1.0
            && metric(&m, "quiver_notifications_queue_length") == 2.0
    })
    .await;
    let m = get_text(&s.url("/metrics")).await;
    // Three alerts for a queue of two: the oldest went.
    assert!(
        metric(&m, "quiver_notifications_dropped_total") >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "quiver_notifications_sent_total"), 0.0);

    // Alertmanager comes up: the queued alerts arrive (each round of three re-sends still
    // overflows a queue of two, as it would in Prometheus).
    let got = receiver_on(tokio::net::TcpListener::bind(am).await.unwrap()).await;
    eventually("the queued alerts delivered", 30, || async {
        let got = got.lock();
        let gpus: std::collections::BTreeSet<String> = posts_of(&got, "Hot")
            .iter()
            .map(|a| a["labels"]["gpu"].as_str().unwrap().to_string())
            .collect();
        gpus.len() >= 2
    })
    .await;
    s.stop().await;
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback.
struct Alertmanager {
    base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_alertmanager() -> Alertmanager {
    let binary = which("prometheus-alertmanager")
        .or_else(|| which("alertmanager"))
        .expect("prometheus-alertmanager is installed (Debian package prometheus-alertmanager)");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: nowhere\n  group_wait: 1s\nreceivers:\n  - name: nowhere\n",
    )
    .unwrap();
    let port = free_port();
    let child = std::process::Command::new(binary)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually("alertmanager ready", 30, || async {
        client()
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    Alertmanager {
        base,
        child,
        _dir: dir,
    }
}

/// The alerts Alertmanager shows (active ones: resolved alerts leave the list).
async fn am_alerts(am: &Alertmanager) -> Vec<Value> {
    let (code, v) = get_json(&format!("{}/api/v2/alerts", am.base)).await;
    assert_eq!(code, 200, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs prometheus-alertmanager (Debian package prometheus-alertmanager)"]
async fn alerts_fire_and_resolve_in_a_real_alertmanager() {
    let am = start_alertmanager().await;
    let addr = am.base.trim_start_matches("http://").to_string();
    let (s, _) = start_with_files(&config(&addr), &[("rules.yml", RULES)], &[]).await;
    import(&s, "gpu_util{gpu=\"0\"} 90\n").await;
    eventually("Hot firing in Alertmanager", 30, || async {
        am_alerts(&am)
            .await
            .iter()
            .any(|a| a["labels"]["alertname"] == "Hot" && a["status"]["state"] == "active")
    })
    .await;
    let hot = am_alerts(&am)
        .await
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "Hot")
        .unwrap();
    assert_eq!(hot["labels"]["cluster"], "eu1");
    assert_eq!(hot["labels"]["severity"], "page");
    assert_eq!(hot["annotations"]["summary"], "GPU 0 at 90");
    assert!(
        hot["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/graph?g0.expr=")
    );
    assert!(
        am_alerts(&am)
            .await
            .iter()
            .all(|a| a["labels"]["alertname"] != "Quiet"),
        "relabeling drops Quiet"
    );

    import(&s, "gpu_util{gpu=\"0\"} 10\n").await;
    eventually("Hot resolved in Alertmanager", 30, || async {
        am_alerts(&am)
            .await
            .iter()
            .all(|a| a["labels"]["alertname"] != "Hot")
    })
    .await;
    s.stop().await;
}
