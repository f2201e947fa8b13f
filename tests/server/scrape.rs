//! Scraping end to end: a real HTTP exporter on loopback, a real Quiver scraping it every
//! second, and the results read back through the API.

use std::sync::Arc;

use axum::http::header;
use parking_lot::Mutex;
use quiver::config::Config;
use serde_json::Value;

use super::support::{TestServer, client, eventually, export, get_json, query};

/// An exporter whose exposition, content type and status the test changes at will.
#[derive(Clone)]
struct Exporter {
    addr: String,
    state: Arc<Mutex<(u16, String, String)>>,
    hits: Arc<Mutex<u64>>,
}

impl Exporter {
    async fn start(body: &str) -> Self {
        let state = Arc::new(Mutex::new((
            200u16,
            "text/plain; version=0.0.4".to_string(),
            body.to_string(),
        )));
        let hits = Arc::new(Mutex::new(0u64));
        let (s, h) = (state.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (s, h) = (s.clone(), h.clone());
                async move {
                    *h.lock() += 1;
                    let (code, ct, body) = s.lock().clone();
                    (
                        axum::http::StatusCode::from_u16(code).unwrap(),
                        [(header::CONTENT_TYPE, ct)],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Exporter { addr, state, hits }
    }

    fn set(&self, code: u16, content_type: &str, body: &str) {
        *self.state.lock() = (code, content_type.to_string(), body.to_string());
    }

    fn hits(&self) -> u64 {
        *self.hits.lock()
    }
}

fn config(yaml: &str) -> Config {
    Config::from_yaml("test.yml", yaml).unwrap()
}

async fn server(yaml: &str, flags: &[&str]) -> TestServer {
    TestServer::start_with_config(tempfile::tempdir().unwrap(), flags, config(yaml)).await
}

/// An instant query at now: the result vector.
async fn active_targets(s: &TestServer) -> Vec<Value> {
    let (code, v) = get_json(&s.url("/api/v1/targets?state=active")).await;
    assert_eq!(code, 200, "{v}");
    v["data"]["activeTargets"].as_array().unwrap().clone()
}

async fn value_of(s: &TestServer, q: &str) -> Option<f64> {
    query(s, q)
        .await
        .first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

const EXPOSITION: &str = "# HELP requests_total Requests served.\n\
# TYPE requests_total counter\n\
requests_total{code=\"200\"} 10\n\
requests_total{code=\"500\"} 2\n\
# TYPE temperature gauge\n\
temperature{instance=\"exposed\"} 21.5\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_series_carry_job_and_instance_and_the_report_series() {
    let exp = Exporter::start(EXPOSITION).await;
    let s = server(
        &format!(
            "scrape_configs:\n- job_name: app\n  scrape_interval: 1s\n  static_configs:\n  - targets: ['{}']\n    labels: {{env: test}}\n",
            exp.addr
        ),
        &[],
    )
    .await;
    eventually("a successful scrape", 20, || async {
        value_of(&s, "up").await == Some(1.0)
    })
    .await;
    let r = query(&s, "requests_total").await;
    assert_eq!(r.len(), 2);
    let m = &r[0]["metric"];
    assert_eq!(m["job"], "app");
    assert_eq!(m["instance"], exp.addr);
    assert_eq!(m["env"], "test");
    // honor_labels is off: the exposed instance label is kept as exported_instance.
    let t = query(&s, "temperature").await;
    assert_eq!(t[0]["metric"]["instance"], exp.addr);
    assert_eq!(t[0]["metric"]["exported_instance"], "exposed");
    assert_eq!(value_of(&s, "scrape_samples_scraped").await, Some(3.0));
    assert_eq!(
        value_of(&s, "scrape_samples_post_metric_relabeling").await,
        Some(3.0)
    );
    assert!(value_of(&s, "scrape_duration_seconds").await.unwrap() > 0.0);
    // /api/v1/targets
    let targets = active_targets(&s).await;
    assert_eq!(targets.len(), 1);
    let t = &targets[0];
    assert_eq!(t["health"], "up");
    assert_eq!(t["scrapePool"], "app");
    assert_eq!(t["scrapeUrl"], format!("http://{}/metrics", exp.addr));
    assert_eq!(t["labels"]["env"], "test");
    assert_eq!(t["discoveredLabels"]["__address__"], exp.addr);
    assert_eq!(t["discoveredLabels"]["__scrape_interval__"], "1s");
    assert_eq!(t["scrapeInterval"], "1s");
    assert_eq!(t["lastError"], "");
    // Metadata, per target and overall.
    let (_, v) = get_json(&s.url("/api/v1/targets/metadata?metric=requests_total")).await;
    let md = v["data"].as_array().unwrap();
    assert_eq!(md.len(), 1, "{v}");
    assert_eq!(md[0]["type"], "counter");
    assert_eq!(md[0]["help"], "Requests served.");
    assert_eq!(md[0]["target"]["job"], "app");
    let (_, v) = get_json(&s.url("/api/v1/metadata")).await;
    assert_eq!(v["data"]["temperature"][0]["type"], "gauge", "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_series_and_failed_scrapes_write_staleness_markers() {
    let exp = Exporter::start("a 1\nb 2\n").await;
    let s = server(
        &format!(
            "scrape_configs:\n- job_name: app\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{}']}}]\n",
            exp.addr
        ),
        &[],
    )
    .await;
    eventually("both series", 20, || async {
        query(&s, "b").await.len() == 1
    })
    .await;
    exp.set(200, "text/plain", "a 1\n");
    // b disappears at the next scrape, long before the 5 m lookback would hide it.
    eventually("b to go stale", 10, || async {
        query(&s, "b").await.is_empty()
    })
    .await;
    assert_eq!(query(&s, "a").await.len(), 1);
    let b = export(&s.base, "b").await;
    assert!(
        b[0].2.last().unwrap().is_nan(),
        "the last sample of b is a staleness marker"
    );
    // A malformed exposition fails the scrape: up = 0, the error on the target, a stale.
    exp.set(200, "text/plain", "a 1\nbroken{ 2\n");
    eventually("up = 0", 10, || async {
        value_of(&s, "up").await == Some(0.0)
    })
    .await;
    let t = &active_targets(&s).await[0];
    assert_eq!(t["health"], "down");
    assert!(t["lastError"].as_str().unwrap().contains("line 2"), "{t}");
    assert!(
        query(&s, "a").await.is_empty(),
        "a failed scrape marks every series stale"
    );
    // A server error is a failed scrape too (nothing scraped); recovery brings the series back.
    exp.set(503, "text/plain", "");
    eventually("the 503 error", 10, || async {
        active_targets(&s).await[0]["lastError"]
            .as_str()
            .unwrap()
            .contains("503")
    })
    .await;
    assert_eq!(value_of(&s, "scrape_samples_scraped").await, Some(0.0));
    exp.set(200, "text/plain", "a 5\n");
    eventually("recovery", 10, || async {
        value_of(&s, "a").await == Some(5.0)
    })
    .await;
    assert_eq!(value_of(&s, "up").await, Some(1.0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_target_reports_up_zero_with_the_error() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let s = server(
        &format!(
            "scrape_configs:\n- job_name: gone\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{addr}']}}]\n"
        ),
        &[],
    )
    .await;
    eventually("up = 0", 20, || async {
        value_of(&s, "up{job=\"gone\"}").await == Some(0.0)
    })
    .await;
    let t = &active_targets(&s).await[0];
    assert_eq!(t["health"], "down");
    assert!(!t["lastError"].as_str().unwrap().is_empty());
    // SQL sees the same target in system.targets.
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[(
            "query",
            "SELECT scrape_pool, scrape_url, instance, labels['job'], health, last_error, \
             last_scrape IS NOT NULL, scrape_interval_seconds FROM system.targets",
        )])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let rows = v["data"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    let row = rows[0].as_array().unwrap();
    assert_eq!(row[0], "gone");
    assert_eq!(row[1], t["scrapeUrl"]);
    assert_eq!(row[2], addr.as_str());
    assert_eq!(row[3], "gone");
    assert_eq!(row[4], "down");
    assert!(!row[5].as_str().unwrap().is_empty());
    assert_eq!(row[6], true);
    assert_eq!(row[7], 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_honor_labels_relabeling_and_limits() {
    let exp = Exporter::start("").await;
    exp.set(
        200,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "# TYPE jobs_seconds counter\n# UNIT jobs_seconds seconds\njobs_seconds_total{job=\"inner\"} 4 # {trace_id=\"x\"} 1\ngo_gc 1\n# EOF\n",
    );
    let s = server(
        &format!(
            "scrape_configs:\n- job_name: om\n  honor_labels: true\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{}']}}]\n  metric_relabel_configs:\n  - {{source_labels: [__name__], regex: 'go_.*', action: drop}}\n",
            exp.addr
        ),
        &[],
    )
    .await;
    eventually("the OpenMetrics scrape", 20, || async {
        !query(&s, "jobs_seconds_total").await.is_empty()
    })
    .await;
    let r = query(&s, "jobs_seconds_total").await;
    assert_eq!(
        r[0]["metric"]["job"], "inner",
        "honor_labels keeps the exposed job"
    );
    assert!(
        query(&s, "go_gc").await.is_empty(),
        "dropped by metric relabeling"
    );
    assert_eq!(value_of(&s, "scrape_samples_scraped").await, Some(2.0));
    assert_eq!(
        value_of(&s, "scrape_samples_post_metric_relabeling").await,
        Some(1.0)
    );
    let (_, v) = get_json(&s.url("/api/v1/metadata?metric=jobs_seconds")).await;
    assert_eq!(v["data"]["jobs_seconds"][0]["unit"], "seconds", "{v}");
    s.stop().await;

    // sample_limit fails the whole scrape.
    let exp = Exporter::start("a 1\nb 2\nc 3\n").await;
    let s = server(
        &format!(
            "scrape_configs:\n- job_name: lim\n  sample_limit: 2\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{}']}}]\n",
            exp.addr
        ),
        &[],
    )
    .await;
    eventually("up = 0", 20, || async {
        value_of(&s, "up").await == Some(0.0)
    })
    .await;
    assert!(query(&s, "a").await.is_empty());
    let t = &active_targets(&s).await[0];
    assert!(
        t["lastError"].as_str().unwrap().contains("sample_limit"),
        "{t}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_good_configs_and_keeps_the_old_one_on_errors() {
    let a = Exporter::start("from_a 1\n").await;
    let b = Exporter::start("from_b 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    let job = |name: &str, addr: &str| {
        format!(
            "- job_name: {name}\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{addr}']}}]\n"
        )
    };
    std::fs::write(&path, format!("scrape_configs:\n{}", job("a", &a.addr))).unwrap();
    let flags = [
        format!("--config.file={}", path.display()),
        "--web.enable-lifecycle".to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &flags,
        Config::load(Some(&path)).unwrap(),
    )
    .await;
    eventually("job a", 20, || async {
        !query(&s, "from_a").await.is_empty()
    })
    .await;

    // A broken file: 500 with file and line, and the running config stays.
    std::fs::write(
        &path,
        "scrape_configs:\n- job_name: a\n  scrape_interval: soon\n",
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(text.contains("prometheus.yml:3"), "{text}");
    assert!(text.contains("scrape_interval"), "{text}");
    let (_, v) = get_json(&s.url("/api/v1/status/config")).await;
    assert!(v["data"]["yaml"].as_str().unwrap().contains(&a.addr));
    let metrics = super::support::get_text(&s.url("/metrics")).await;
    assert!(
        metrics.contains("quiver_config_last_reload_successful 0"),
        "{metrics}"
    );

    // A good file adds job b; job a keeps scraping.
    std::fs::write(
        &path,
        format!(
            "scrape_configs:\n{}{}",
            job("a", &a.addr),
            job("b", &b.addr)
        ),
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually("job b", 20, || async {
        !query(&s, "from_b").await.is_empty()
    })
    .await;
    let hits = a.hits();
    eventually("job a still scraped", 10, || async { a.hits() > hits }).await;
    assert_eq!(active_targets(&s).await.len(), 2);

    // Removing job b stops it: its series go stale after about two intervals.
    std::fs::write(&path, format!("scrape_configs:\n{}", job("a", &a.addr))).unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eventually("b's series to go stale", 20, || async {
        query(&s, "from_b").await.is_empty()
    })
    .await;
    assert_eq!(active_targets(&s).await.len(), 1);
    let (_, v) = get_json(&s.url("/api/v1/status/flags")).await;
    assert_eq!(v["data"]["web.enable-lifecycle"], "true");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_targets_follow_the_file_and_relabeling_drops_targets() {
    let a = Exporter::start("sd_a 1\n").await;
    let b = Exporter::start("sd_b 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "x"}}}}]"#,
            a.addr
        ),
    )
    .unwrap();
    let s = server(
        &format!(
            "scrape_configs:\n- job_name: sd\n  scrape_interval: 1s\n  file_sd_configs: [{{files: ['{}/*.json']}}]\n  relabel_configs:\n  - {{source_labels: [team], regex: drop, action: drop}}\n",
            dir.path().display()
        ),
        &[],
    )
    .await;
    eventually("the file SD target", 20, || async {
        !query(&s, "sd_a{team=\"x\"}").await.is_empty()
    })
    .await;
    std::fs::write(
        &sd,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "y"}}}}, {{"targets": ["{}"], "labels": {{"team": "drop"}}}}]"#,
            b.addr, a.addr
        ),
    )
    .unwrap();
    eventually("the new target", 20, || async {
        !query(&s, "sd_b{team=\"y\"}").await.is_empty()
    })
    .await;
    let (_, v) = get_json(&s.url("/api/v1/targets?state=dropped")).await;
    let dropped = v["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{v}");
    assert_eq!(dropped[0]["discoveredLabels"]["team"], "drop");
    assert_eq!(
        dropped[0]["discoveredLabels"]["__meta_filepath"],
        sd.display().to_string()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_scrapes_quiver_itself() {
    let s = TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &[],
        Config::load(None).unwrap(),
    )
    .await;
    // The default interval is 15 s and the first scrape lands somewhere in it.
    eventually("the self-scrape", 40, || async {
        value_of(&s, "up{job=\"quiver\"}").await == Some(1.0)
    })
    .await;
    assert_eq!(query(&s, "quiver_ready").await.len(), 1);
    let t = &active_targets(&s).await[0];
    let port = s.base.rsplit(':').next().unwrap();
    assert_eq!(t["labels"]["instance"], format!("localhost:{port}"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_leaves_unchanged_jobs_running_and_replaces_changed_ones() {
    use clap::Parser;
    use quiver::config::file::ConfigFile;
    use quiver::scrape::ScrapeManager;
    let dir = tempfile::tempdir().unwrap();
    let flags = quiver::config::Flags::parse_from([
        "quiver".to_string(),
        format!("--storage.path={}", dir.path().display()),
    ]);
    let db = quiver_storage::Db::open(quiver::storage_options(&flags).unwrap())
        .await
        .unwrap();
    let manager = ScrapeManager::new(db.clone(), Default::default());
    let job = |name: &str, interval: &str| {
        format!(
            "- job_name: {name}\n  scrape_interval: {interval}\n  static_configs: [{{targets: ['127.0.0.1:1']}}]\n"
        )
    };
    let cfg =
        |jobs: String| ConfigFile::parse("t.yml", &format!("scrape_configs:\n{jobs}")).unwrap();
    let pool = |name: &str| {
        manager
            .pools()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
    };
    manager.apply(&cfg(job("a", "1m"))).await.unwrap();
    let a1 = pool("a");
    manager
        .apply(&cfg(job("a", "1m") + &job("b", "1m")))
        .await
        .unwrap();
    assert!(
        Arc::ptr_eq(&a1, &pool("a")),
        "an unchanged job keeps its pool"
    );
    manager
        .apply(&cfg(job("a", "30s") + &job("b", "1m")))
        .await
        .unwrap();
    assert!(
        !Arc::ptr_eq(&a1, &pool("a")),
        "a changed job gets a new pool"
    );
    assert_eq!(manager.pools().len(), 2);
    manager.apply(&cfg(job("b", "1m"))).await.unwrap();
    assert_eq!(manager.pools().len(), 1);
    manager.stop().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, "global: {scrape_interval: 1m}\n").unwrap();
    let flag = format!("--config.file={}", path.display());
    let child = super::support::ChildServer::start(&dir.path().join("data"), &[&flag]).await;
    let config = |base: String| async move {
        let (_, v) = get_json(&format!("{base}/api/v1/status/config")).await;
        v["data"]["yaml"].as_str().unwrap().to_string()
    };
    assert!(config(child.base.clone()).await.contains("1m"));
    std::fs::write(
        &path,
        "global: {scrape_interval: 1m}\nscrape_configs: [{job_name: added, static_configs: [{targets: ['127.0.0.1:1']}]}]\n",
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let base = child.base.clone();
    eventually("the reloaded configuration", 10, || {
        let base = base.clone();
        async move {
            let (_, v) = get_json(&format!("{base}/api/v1/targets")).await;
            v["data"]["activeTargets"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        }
    })
    .await;
    assert!(config(child.base.clone()).await.contains("job_name: added"));
}

/// An HTTPS exporter (rustls) with the test certificates in `tests/fixtures/tls`: it answers
/// `tls_metric 1` and records the `Authorization` header of each request; with
/// `client_auth`, it only completes handshakes with a client certificate from the test CA.
async fn tls_exporter(client_auth: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    tls_exporter_with(client_auth, "server").await
}

/// The same with the certificate `<cert>.pem` (and key `<cert>.key`).
async fn tls_exporter_with(client_auth: bool, cert: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixtures.join(format!("{cert}.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(fixtures.join(format!("{cert}.key"))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(fixtures.join("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap()
    } else {
        builder
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap()
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let auth = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .starts_with("authorization:")
                            .then(|| l[14..].trim().to_string())
                    })
                    .unwrap_or_default();
                log.lock().push(auth);
                let body = "tls_metric 1\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_with_ca_client_certificates_and_credentials() {
    let (plain, seen_plain) = tls_exporter(false).await;
    let (mtls, seen_mtls) = tls_exporter(true).await;
    // Its certificate names only exporter.test.
    let (named, _) = tls_exporter_with(false, "named").await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("token"), "tok-123\n").unwrap();
    let f = |name: &str| fixtures.join(name).display().to_string();
    let job = |name: &str, target: &str, extra: &str| {
        format!(
            "- job_name: {name}\n  scheme: https\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{target}']}}]\n{extra}"
        )
    };
    let yaml = format!(
        "scrape_configs:\n{}{}{}{}{}{}{}",
        job(
            "ca_basic",
            &plain,
            &format!(
                "  tls_config: {{ca_file: '{}'}}\n  basic_auth: {{username: scraper, password_file: '{}'}}\n",
                f("ca.pem"),
                dir.path().join("password").display()
            )
        ),
        job("no_ca", &plain, ""),
        job(
            "insecure",
            &plain,
            "  tls_config: {insecure_skip_verify: true}\n"
        ),
        job(
            "mtls",
            &mtls,
            &format!(
                "  tls_config: {{ca_file: '{}', cert_file: '{}', key_file: '{}'}}\n  authorization: {{credentials_file: '{}'}}\n",
                f("ca.pem"),
                f("client.pem"),
                f("client.key"),
                dir.path().join("token").display()
            )
        ),
        job(
            "mtls_without_cert",
            &mtls,
            &format!("  tls_config: {{ca_file: '{}'}}\n", f("ca.pem"))
        ),
        job(
            "server_name",
            &named,
            &format!(
                "  tls_config: {{ca_file: '{}', server_name: exporter.test}}\n",
                f("ca.pem")
            )
        ),
        job(
            "wrong_name",
            &named,
            &format!("  tls_config: {{ca_file: '{}'}}\n", f("ca.pem"))
        ),
    );
    let s = server(&yaml, &[]).await;
    let up = |job: &'static str| {
        let s = &s;
        async move { value_of(s, &format!("up{{job=\"{job}\"}}")).await }
    };
    eventually("every TLS job scraped", 20, || async {
        let mut all = true;
        for j in [
            "ca_basic",
            "no_ca",
            "insecure",
            "mtls",
            "mtls_without_cert",
            "server_name",
            "wrong_name",
        ] {
            all &= up(j).await.is_some();
        }
        all
    })
    .await;
    assert_eq!(up("ca_basic").await, Some(1.0));
    assert_eq!(up("insecure").await, Some(1.0));
    assert_eq!(up("mtls").await, Some(1.0));
    assert_eq!(
        up("no_ca").await,
        Some(0.0),
        "an unknown CA fails the scrape"
    );
    assert_eq!(
        up("mtls_without_cert").await,
        Some(0.0),
        "the server wants a client certificate"
    );
    assert_eq!(
        up("server_name").await,
        Some(1.0),
        "the certificate is checked against server_name"
    );
    assert_eq!(
        up("wrong_name").await,
        Some(0.0),
        "127.0.0.1 is not a name of that certificate"
    );
    // base64("scraper:s3cret")
    assert!(
        seen_plain
            .lock()
            .iter()
            .any(|a| a == "Basic c2NyYXBlcjpzM2NyZXQ="),
        "{:?}",
        seen_plain.lock()
    );
    assert!(
        seen_mtls.lock().iter().any(|a| a == "Bearer tok-123"),
        "{:?}",
        seen_mtls.lock()
    );
    let targets = active_targets(&s).await;
    let no_ca = targets.iter().find(|t| t["scrapePool"] == "no_ca").unwrap();
    assert!(!no_ca["lastError"].as_str().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_labels_change_on_reload_leaves_stale_series_behind() {
    let exp = Exporter::start("m 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    let cfg = |v: &str| {
        format!(
            "scrape_configs:\n- job_name: a\n  scrape_interval: 1s\n  static_configs: [{{targets: ['{}'], labels: {{v: '{v}'}}}}]\n",
            exp.addr
        )
    };
    std::fs::write(&path, cfg("1")).unwrap();
    let flags = [
        format!("--config.file={}", path.display()),
        "--web.enable-lifecycle".to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &flags,
        Config::load(Some(&path)).unwrap(),
    )
    .await;
    eventually("v=1", 20, || async {
        !query(&s, "m{v=\"1\"}").await.is_empty()
    })
    .await;
    std::fs::write(&path, cfg("2")).unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eventually("v=2", 20, || async {
        !query(&s, "m{v=\"2\"}").await.is_empty()
    })
    .await;
    // The old target is gone: its series and report series get staleness markers.
    eventually("v=1 to go stale", 20, || async {
        query(&s, "m{v=\"1\"}").await.is_empty() && query(&s, "up{v=\"1\"}").await.is_empty()
    })
    .await;
    s.stop().await;
}

/// The `le` values of a classic histogram's bucket series, sorted.
async fn bucket_bounds(s: &TestServer, metric: &str) -> Vec<String> {
    let mut les: Vec<String> = query(s, metric)
        .await
        .iter()
        .map(|x| x["metric"]["le"].as_str().unwrap().to_string())
        .collect();
    les.sort();
    les
}

/// An exporter that negotiates as client libraries do: the protobuf format when the scrape's
/// `Accept` asks for it, else the text format. It records each `Accept` it was sent.
async fn negotiating_exporter() -> (String, Arc<Mutex<Vec<String>>>) {
    use quiver_ingest::exposition_proto::proto::{
        self, Bucket, Histogram, LabelPair, Metric, MetricFamily, Value,
    };
    use quiver_ingest::histogram::proto::BucketSpan;
    let accepts = Arc::new(Mutex::new(Vec::new()));
    let seen = accepts.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let accept = headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock().push(accept.clone());
                if accept.contains("application/vnd.google.protobuf") {
                    // rpc_seconds both ways: classic buckets 0.5 (1) and 1 (3), count 4;
                    // native schema 0, (1,2]: 2 and (2,4]: 1, one in the zero bucket.
                    let body = proto::encode(&[
                        MetricFamily {
                            name: "rpc_seconds".into(),
                            help: "RPC latency.".into(),
                            r#type: 4,
                            metric: vec![Metric {
                                label: vec![LabelPair {
                                    name: "svc".into(),
                                    value: "a".into(),
                                }],
                                histogram: Some(Histogram {
                                    sample_count: 4,
                                    sample_sum: 5.0,
                                    bucket: vec![
                                        Bucket {
                                            cumulative_count: 1,
                                            upper_bound: 0.5,
                                            ..Default::default()
                                        },
                                        Bucket {
                                            cumulative_count: 3,
                                            upper_bound: 1.0,
                                            ..Default::default()
                                        },
                                    ],
                                    zero_threshold: 1e-128,
                                    zero_count: 1,
                                    positive_span: vec![BucketSpan {
                                        offset: 1,
                                        length: 2,
                                    }],
                                    positive_delta: vec![2, -1],
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }],
                            unit: String::new(),
                        },
                        MetricFamily {
                            name: "jobs_total".into(),
                            r#type: 0,
                            metric: vec![Metric {
                                counter: Some(Value { value: 3.0 }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        },
                    ]);
                    (
                        [(
                            header::CONTENT_TYPE,
                            quiver_ingest::exposition_proto::MEDIA_TYPE,
                        )],
                        body,
                    )
                } else {
                    let text = "# TYPE rpc_seconds histogram\n\
                        rpc_seconds_bucket{svc=\"a\",le=\"0.5\"} 1\n\
                        rpc_seconds_bucket{svc=\"a\",le=\"1\"} 3\n\
                        rpc_seconds_bucket{svc=\"a\",le=\"+Inf\"} 4\n\
                        rpc_seconds_sum{svc=\"a\"} 5\n\
                        rpc_seconds_count{svc=\"a\"} 4\n\
                        # TYPE jobs_total counter\njobs_total 3\n";
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        text.as_bytes().to_vec(),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, accepts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_are_scraped_from_the_protobuf_format_as_configured() {
    let (addr, accepts) = negotiating_exporter().await;
    let job = |extra: &str| {
        format!(
            "scrape_configs:\n- job_name: nh\n  scrape_interval: 1s\n{extra}  static_configs: [{{targets: ['{addr}']}}]\n"
        )
    };
    // scrape_native_histograms: protobuf asked for first; the native histogram alone.
    let s = server(&job("  scrape_native_histograms: true\n"), &[]).await;
    eventually("the protobuf scrape", 20, || async {
        value_of(&s, "histogram_count(rpc_seconds)").await.is_some()
    })
    .await;
    assert!(
        accepts.lock()[0].starts_with(quiver_ingest::exposition_proto::MEDIA_TYPE),
        "{:?}",
        accepts.lock()
    );
    assert_eq!(
        value_of(&s, "histogram_count(rpc_seconds)").await,
        Some(4.0)
    );
    assert_eq!(value_of(&s, "histogram_sum(rpc_seconds)").await, Some(5.0));
    assert_eq!(value_of(&s, "jobs_total").await, Some(3.0));
    assert!(query(&s, "rpc_seconds_bucket").await.is_empty());
    assert_eq!(value_of(&s, "scrape_samples_scraped").await, Some(2.0));
    let (_, v) = get_json(&s.url("/api/v1/metadata?metric=rpc_seconds")).await;
    assert_eq!(v["data"]["rpc_seconds"][0]["type"], "histogram", "{v}");
    s.stop().await;

    // always_scrape_classic_histograms (set globally): the classic series as well.
    let s = server(
        &format!(
            "global:\n  scrape_native_histograms: true\n  always_scrape_classic_histograms: true\n{}",
            job("")
        ),
        &[],
    )
    .await;
    eventually("both kinds", 20, || async {
        value_of(&s, "histogram_count(rpc_seconds)").await.is_some()
            && !query(&s, "rpc_seconds_bucket").await.is_empty()
    })
    .await;
    assert_eq!(
        bucket_bounds(&s, "rpc_seconds_bucket").await,
        ["+Inf", "0.5", "1.0"]
    );
    s.stop().await;

    // Without it: the text format is asked for first and classic series come back.
    accepts.lock().clear();
    let s = server(&job(""), &[]).await;
    eventually("the text scrape", 20, || async {
        !query(&s, "rpc_seconds_bucket").await.is_empty()
    })
    .await;
    assert!(
        accepts.lock()[0].starts_with("application/openmetrics-text;version=1.0.0"),
        "{:?}",
        accepts.lock()
    );
    assert!(query(&s, "rpc_seconds").await.is_empty());
    // The text format's `le="1"` is `1.0`, as the protobuf format writes it (Prometheus 3).
    assert_eq!(
        bucket_bounds(&s, "rpc_seconds_bucket").await,
        ["+Inf", "0.5", "1.0"]
    );
    s.stop().await;

    // scrape_protocols decides what is asked for, whatever the histograms setting.
    accepts.lock().clear();
    let s = server(
        &job("  scrape_native_histograms: true\n  scrape_protocols: [PrometheusText0.0.4]\n"),
        &[],
    )
    .await;
    eventually("a scrape", 20, || async {
        value_of(&s, "jobs_total").await.is_some()
    })
    .await;
    assert_eq!(
        accepts.lock()[0],
        "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
    );
    s.stop().await;

    // convert_classic_histograms_to_nhcb: the classic buckets of the text format become a
    // histogram with custom buckets (and only that).
    let s = server(
        &job("  convert_classic_histograms_to_nhcb: true
"),
        &[],
    )
    .await;
    eventually("the converted histogram", 20, || async {
        value_of(&s, "histogram_count(rpc_seconds)").await.is_some()
    })
    .await;
    assert_eq!(
        value_of(&s, "histogram_count(rpc_seconds)").await,
        Some(4.0)
    );
    assert_eq!(
        value_of(&s, "histogram_quantile(0.5, rpc_seconds)").await,
        Some(0.75)
    );
    assert!(query(&s, "rpc_seconds_bucket").await.is_empty());
    assert_eq!(value_of(&s, "jobs_total").await, Some(3.0));
    s.stop().await;
}

/// The label sets (without `job`) of a job's series at the latest scrape, sorted.
async fn series_of(s: &TestServer, job: &str) -> Vec<String> {
    let mut out: Vec<String> = query(s, &format!("{{job=\"{job}\"}}"))
        .await
        .iter()
        .map(|r| {
            let mut m = r["metric"].as_object().unwrap().clone();
            m.remove("job");
            Value::Object(m).to_string()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs prometheus (Debian package)"]
async fn a_real_client_golang_target_gives_the_same_series_as_protobuf_and_as_text() {
    // Prometheus 2.42's own /metrics (client_golang): counters, gauges, summaries and classic
    // histograms, in both formats by content negotiation.
    let (mut child, prom, _dir) = super::remote_write::native_histogram_prometheus().await;
    let addr = prom.trim_start_matches("http://");
    let job = |name: &str, extra: &str| {
        format!(
            "- job_name: {name}\n  scrape_interval: 1s\n{extra}  static_configs: [{{targets: ['{addr}']}}]\n"
        )
    };
    let s = server(
        &format!(
            "scrape_configs:\n{}{}{}",
            job("proto", "  scrape_protocols: [PrometheusProto]\n"),
            job("text", "  scrape_protocols: [PrometheusText0.0.4]\n"),
            job(
                "nhcb",
                "  scrape_protocols: [PrometheusProto]\n  convert_classic_histograms_to_nhcb: true\n"
            ),
        ),
        &[],
    )
    .await;
    // Series come and go with the target's own activity (its HTTP handlers are first counted
    // when first scraped): compare once both have settled.
    let mut last = (Vec::new(), Vec::new());
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (p, t) = (series_of(&s, "proto").await, series_of(&s, "text").await);
        if !p.is_empty() && p == t {
            break;
        }
        last = (p, t);
    }
    let (p, t) = (series_of(&s, "proto").await, series_of(&s, "text").await);
    if p != t {
        let only_p: Vec<_> = p.iter().filter(|x| !t.contains(x)).collect();
        let only_t: Vec<_> = t.iter().filter(|x| !p.contains(x)).collect();
        panic!(
            "protobuf only: {only_p:?}\ntext only: {only_t:?}\n(before: {})",
            last.0.len()
        );
    }
    assert!(p.len() > 100, "{}", p.len());
    assert!(
        p.iter().any(|x| x.contains("\"quantile\":\"0.5\"")),
        "a summary"
    );
    assert!(
        p.iter().any(|x| x.contains("\"le\":\"+Inf\"")),
        "a classic histogram"
    );
    // Converting: each classic histogram of the text scrape is one custom-buckets histogram,
    // and no `_bucket` series is left.
    let families: std::collections::BTreeSet<String> = query(&s, "{job=\"text\", le!=\"\"}")
        .await
        .iter()
        .map(|r| {
            let name = r["metric"]["__name__"].as_str().unwrap();
            name.strip_suffix("_bucket").unwrap_or(name).to_string()
        })
        .collect();
    assert!(!families.is_empty());
    for f in &families {
        let q = format!("histogram_count({f}{{job=\"nhcb\"}})");
        let n = query(&s, &q).await.len();
        let classic = query(&s, &format!("{f}_count{{job=\"text\"}}")).await.len();
        assert_eq!(n, classic, "{q}");
    }
    assert!(query(&s, "{job=\"nhcb\", le!=\"\"}").await.is_empty());
    s.stop().await;
    let _ = child.kill();
    let _ = child.wait();
}
