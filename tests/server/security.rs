//! `--web.config.file` through the real interfaces: HTTPS with reqwest and curl, basic-auth
//! users (401 and `WWW-Authenticate: Basic` for everything the router serves), client
//! certificates, a bad file refused at startup naming file, line and field, Flight over TLS with
//! users (arrow-flight's own clients; pyarrow.flight as interop), and the admin and lifecycle
//! endpoints staying off. Certificates are made per test ([`TestPki`]).

use std::path::Path;
use std::process::Command;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightClient, Ticket};
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;
use quiver::config::Config;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::support::{TestPki, TestServer, eventually, free_port, python_json, which};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

/// A server with `web.yml` (and the test certificates) in its data folder; its paths in the
/// file are relative, so they resolve against the file's folder. `ready` is the client that
/// can reach `/-/ready`.
async fn start(
    web_yaml: &str,
    pki: &TestPki,
    flags: &[&str],
    ready: &reqwest::Client,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path());
    let web = dir.path().join("web.yml");
    std::fs::write(&web, web_yaml).unwrap();
    let flag = format!("--web.config.file={}", web.display());
    let mut all = vec![flag.as_str()];
    all.extend_from_slice(flags);
    let scheme = if web_yaml.contains("tls_server_config") {
        "https"
    } else {
        "http"
    };
    TestServer::start_serving(
        dir,
        &all,
        Config::from_yaml("test.yml", "").unwrap(),
        scheme,
        ready,
    )
    .await
}

/// A server with TLS, `extra` (more of the web configuration) and [`USER`], and a client that
/// trusts its CA and sends [`USER`]'s credentials.
async fn start_with_user(
    pki: &TestPki,
    extra: &str,
    flags: &[&str],
) -> (TestServer, reqwest::Client) {
    let authed = pki
        .client()
        .default_headers(basic_header(USER, PASSWORD))
        .build()
        .unwrap();
    let yaml = format!("{TLS_YAML}{extra}{}", users_yaml());
    (start(&yaml, pki, flags, &authed).await, authed)
}

/// `basic_auth_users` with [`USER`]'s password hashed at bcrypt's lowest cost (fast tests).
fn users_yaml() -> String {
    format!(
        "basic_auth_users:\n  {USER}: {}\n",
        bcrypt::hash(PASSWORD, 4).unwrap()
    )
}

const TLS_YAML: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";

const MTLS_YAML: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_users_answers_401_without_valid_credentials_on_every_path() {
    let pki = TestPki::new();
    let headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n";
    let (s, authed) = start_with_user(&pki, headers, &[]).await;
    let anonymous = pki.client().build().unwrap();

    // Everything the router serves, Prometheus's health endpoints and unknown paths included.
    for path in [
        "/api/v1/labels",
        "/api/v1/query?query=1",
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/api/v1/status/buildinfo",
        "/no/such/page",
    ] {
        let r = anonymous.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Basic", "{path}");
        assert_eq!(r.headers()["x-frame-options"], "deny", "{path}");
    }
    for (user, password) in [(USER, "wrong"), ("mallory", PASSWORD), (USER, "")] {
        let r = anonymous
            .get(s.url("/api/v1/labels"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}:{password}");
        // The server answers the next request after each refused one.
        let r = authed.get(s.url("/api/v1/labels")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-frame-options"], "deny");
    }

    // Writes go through the same door.
    let r = authed
        .post(s.url("/api/v1/import/prometheus"))
        .body("secured_metric 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = anonymous
        .post(s.url("/api/v1/import/prometheus"))
        .body("secured_metric 2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Plain HTTP to the TLS port gets no answer.
    let plain = s.base.replace("https://", "http://");
    let r = reqwest::Client::new()
        .get(format!("{plain}/-/healthy"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().status() != 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_the_api_over_https_with_a_user_and_is_refused_without() {
    if which("curl").is_none() {
        eprintln!("skipped: no curl");
        return;
    }
    let pki = TestPki::new();
    let (s, _) = start_with_user(&pki, "", &[]).await;
    let ca = s.dir.path().join("ca.pem");
    let url = s.url("/api/v1/status/buildinfo");
    let creds = format!("{USER}:{PASSWORD}");
    let (code, body) = curl(&["--cacert", path(&ca), "-u", &creds, &url]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("\"status\":\"success\""), "{body}");
    let (code, _) = curl(&["--cacert", path(&ca), &url]);
    assert_eq!(code, "401");
    let (code, _) = curl(&["--cacert", path(&ca), "-u", &format!("{USER}:nope"), &url]);
    assert_eq!(code, "401");
    let (code, _) = curl(&["--cacert", path(&ca), "-u", &creds, &url]);
    assert_eq!(code, "200");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_client_certificate_refuses_clients_without_one_or_from_another_ca() {
    let pki = TestPki::new();
    let with_cert = pki.client_with_cert().build().unwrap();
    let s = start(MTLS_YAML, &pki, &[], &with_cert).await;
    let url = s.url("/api/v1/status/buildinfo");

    let without = pki.client().build().unwrap();
    let pem = format!("{}{}", pki.stranger_cert, pki.stranger_key);
    let stranger = pki
        .client()
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    for (who, c) in [("no certificate", &without), ("another CA", &stranger)] {
        assert!(c.get(&url).send().await.is_err(), "{who} got through");
        // The next client with a good certificate is served.
        assert_eq!(with_cert.get(&url).send().await.unwrap().status(), 200);
    }

    if which("curl").is_some() {
        let dir = s.dir.path();
        let (code, _) = curl(&["--cacert", path(&dir.join("ca.pem")), &url]);
        assert_ne!(code, "200", "curl without a certificate got through");
        let (code, body) = curl(&[
            "--cacert",
            path(&dir.join("ca.pem")),
            "--cert",
            path(&dir.join("client.pem")),
            "--key",
            path(&dir.join("client.key")),
            &url,
        ]);
        assert_eq!(code, "200", "{body}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_web_config_stops_the_start_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    TestPki::new().write_to(dir.path());
    let cases = [
        // An unknown field.
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth: RequireAndVerifyClientCert\n",
            4,
            "client_auth",
        ),
        // A file that is not there (relative to the web config's folder).
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
            2,
            "tls_server_config.cert_file",
        ),
        // A setting Quiver does not implement is refused, not ignored.
        (
            "basic_auth_users: {}\nrate_limit:\n  interval: 1s\n  burst: 5\n",
            2,
            "rate_limit: not supported",
        ),
        // A password that is not a bcrypt hash.
        (
            "basic_auth_users:\n  alice: hunter2\n",
            2,
            "basic_auth_users.alice",
        ),
    ];
    for (i, (yaml, line, field)) in cases.into_iter().enumerate() {
        let web = dir.path().join(format!("web{i}.yml"));
        std::fs::write(&web, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .arg(format!("--flight.listen-address=127.0.0.1:{}", free_port()))
            .arg(format!("--web.config.file={}", web.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {yaml}");
        assert!(
            stderr.contains(&format!("{}:{line}:", web.display())),
            "no file:line in {stderr}"
        );
        assert!(stderr.contains(field), "{field} not in {stderr}");
        assert!(!stderr.contains("hunter2"), "the secret leaked: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_lifecycle_endpoints_stay_off_without_their_flags_even_for_users() {
    let pki = TestPki::new();
    let (s, authed) = start_with_user(&pki, "", &[]).await;
    for path in ["/api/v1/admin/flush", "/-/quit", "/-/reload"] {
        let r = authed.post(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    assert_eq!(
        authed
            .get(s.url("/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flight_token_and_users_both_open_the_sql_endpoint() {
    let pki = TestPki::new();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let flag = format!("--flight.token-file={}", token_file.display());
    let (s, _) = start_with_user(&pki, "", &[&flag]).await;
    let c = pki.client().build().unwrap();
    let sql = |req: reqwest::RequestBuilder| async move {
        req.query(&[("query", "SELECT 1")])
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(sql(c.get(s.url("/api/v1/sql"))).await, 401);
    assert_eq!(
        sql(c.get(s.url("/api/v1/sql")).bearer_auth("s3cret")).await,
        200
    );
    assert_eq!(
        sql(c.get(s.url("/api/v1/sql")).basic_auth(USER, Some(PASSWORD))).await,
        200
    );
    assert_eq!(
        sql(c.get(s.url("/api/v1/sql")).bearer_auth("s3cre")).await,
        401
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_over_tls_takes_users_by_handshake_and_refuses_others() {
    let pki = TestPki::new();
    let (s, _) = start_with_user(&pki, "", &[]).await;
    let tls = flight_tls(&pki);
    let channel = || async {
        Channel::from_shared(s.flight.replace("http://", "https://"))
            .unwrap()
            .tls_config(tls.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    };

    // Flight SQL: the handshake with a user's password answers a session token, which the
    // client then sends with every call.
    let mut sql = FlightSqlServiceClient::new(channel().await);
    let err = sql.handshake(USER, "wrong").await.unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    sql.handshake(USER, PASSWORD).await.unwrap();
    let token = sql.token().cloned().unwrap();
    assert!(token.starts_with("qv1."), "{token}");
    let info = sql.execute("SELECT 1 AS one".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    assert_eq!(rows(sql.do_get(ticket).await.unwrap()).await, 1);

    // Plain Flight: no credentials, then a forged token, are refused; Basic auth on the call
    // itself works, and the server keeps answering.
    let ticket = Ticket::new(r#"{"sql": "SELECT 1"}"#);
    let mut anonymous = FlightClient::new(channel().await);
    let err = anonymous.do_get(ticket.clone()).await.err().unwrap();
    assert!(
        err.to_string().contains("needs a user and password"),
        "{err}"
    );
    let mut forged = FlightClient::new(channel().await);
    forged
        .add_header("authorization", &format!("Bearer {token}x"))
        .unwrap();
    assert!(forged.do_get(ticket.clone()).await.is_err());
    let mut basic = FlightClient::new(channel().await);
    basic
        .add_header("authorization", &basic_value(USER, PASSWORD))
        .unwrap();
    assert_eq!(rows(basic.do_get(ticket).await.unwrap()).await, 1);

    // Without TLS, the Flight port does not answer.
    let plain = Channel::from_shared(s.flight.clone())
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let mut c = FlightClient::new(ch);
        c.add_header("authorization", &basic_value(USER, PASSWORD))
            .unwrap();
        assert!(
            c.do_get(Ticket::new(r#"{"sql": "SELECT 1"}"#))
                .await
                .is_err()
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_requires_the_client_certificate_too() {
    let pki = TestPki::new();
    let with_cert = pki.client_with_cert().build().unwrap();
    let s = start(MTLS_YAML, &pki, &[], &with_cert).await;
    let tls = flight_tls(&pki);
    let url = s.flight.replace("http://", "https://");
    let ticket = Ticket::new(r#"{"sql": "SELECT 1"}"#);
    // Without a certificate the handshake fails: at connect, or at the first call.
    if let Ok(ch) = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(tls.clone())
        .unwrap()
        .connect()
        .await
    {
        assert!(FlightClient::new(ch).do_get(ticket.clone()).await.is_err());
    }
    let ch = Channel::from_shared(url)
        .unwrap()
        .tls_config(tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = FlightClient::new(ch);
    assert_eq!(rows(c.do_get(ticket).await.unwrap()).await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs pyarrow"]
async fn pyarrow_flight_authenticates_with_basic_auth_over_tls() {
    let pki = TestPki::new();
    let (s, _) = start_with_user(&pki, "", &[]).await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notebook/flight_tls_basic.py");
    let uri = s.flight.replace("http://", "grpc+tls://");
    let ca = s.dir.path().join("ca.pem");
    let v = python_json(&script, &[uri.as_str(), path(&ca), USER, PASSWORD]);
    assert_eq!(v["rows"], 1, "{v}");
    assert_eq!(v["wrong_password"], "unauthenticated", "{v}");
    assert_eq!(v["token_scheme"], "Bearer", "{v}");
    s.stop().await;
}

/// Client TLS for Flight: trust the test CA, expect the server's name `localhost`.
fn flight_tls(pki: &TestPki) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost")
}

/// The rows of a `DoGet`'s answer.
async fn rows(stream: FlightRecordBatchStream) -> usize {
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

fn basic_value(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn basic_header(user: &str, password: &str) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        basic_value(user, password).parse().unwrap(),
    );
    h
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs curl quietly; answers (HTTP status, body). The status is `000` when no HTTP answer came.
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_web_configuration_applies_without_a_restart() {
    let pki = TestPki::new();
    let (s, alice) = start_with_user(&pki, "", &[]).await;
    let web = s.dir.path().join("web.yml");
    let code = |c: &reqwest::Client| {
        let req = c.get(s.url("/api/v1/labels"));
        async move { req.send().await.map(|r| r.status().as_u16()).ok() }
    };
    assert_eq!(code(&alice).await, Some(200));

    // Bob replaces Alice, and a header appears: on the HTTP port and on Flight.
    let bob_yaml = format!(
        "{TLS_YAML}http_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  bob: {}\n",
        bcrypt::hash("bob's password", 4).unwrap()
    );
    std::fs::write(&web, &bob_yaml).unwrap();
    let bob = pki
        .client()
        .default_headers(basic_header("bob", "bob's password"))
        .build()
        .unwrap();
    eventually("bob to be let in", 10, || async {
        code(&bob).await == Some(200)
    })
    .await;
    assert_eq!(
        code(&alice).await,
        Some(401),
        "the removed user still gets in"
    );
    let r = bob.get(s.url("/api/v1/labels")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "deny");
    let channel = Channel::from_shared(s.flight.replace("http://", "https://"))
        .unwrap()
        .tls_config(flight_tls(&pki))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sql = FlightSqlServiceClient::new(channel);
    assert!(sql.handshake(USER, PASSWORD).await.is_err());
    sql.handshake("bob", "bob's password").await.unwrap();

    // A file that cannot be used refuses everyone (the previous users do not stay in force)
    // until it is fixed.
    std::fs::write(&web, "basic_auth_users: [not, a, map\n").unwrap();
    eventually("a broken file to refuse requests", 10, || async {
        code(&bob).await == Some(500)
    })
    .await;
    assert_eq!(code(&alice).await, Some(500));
    std::fs::write(&web, &bob_yaml).unwrap();
    eventually("the fixed file to let bob in", 10, || async {
        code(&bob).await == Some(200)
    })
    .await;

    // A certificate rotated in place (another CA here): new connections get the new one.
    let rotated = TestPki::new();
    std::fs::write(s.dir.path().join("server.pem"), &rotated.server_cert).unwrap();
    std::fs::write(s.dir.path().join("server.key"), &rotated.server_key).unwrap();
    eventually(
        "new connections to present the new certificate",
        10,
        || async {
            // A fresh client each time: a pooled connection keeps the old session.
            let fresh = rotated
                .client()
                .default_headers(basic_header("bob", "bob's password"))
                .build()
                .unwrap();
            code(&fresh).await == Some(200)
        },
    )
    .await;
    let old_ca = pki.client().build().unwrap();
    assert_eq!(
        code(&old_ca).await,
        None,
        "the old certificate is still served"
    );
    s.stop().await;
}
