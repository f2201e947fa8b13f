//! Fixtures: a real server in-process on 127.0.0.1:0, or the real binary as a child process,
//! and helpers to talk to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use quiver::config::{Config, Flags};
use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
use serde_json::Value;
use tokio::sync::oneshot;

/// A Quiver running in this process, on its own data folder.
pub struct TestServer {
    pub base: String,
    /// Flight's address, `http://127.0.0.1:<port>`.
    pub flight: String,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(extra_flags: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), extra_flags).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra_flags: &[&str]) -> Self {
        // No scrape configs: tests see only the data they write.
        Self::start_with_config(dir, extra_flags, Config::from_yaml("test.yml", "").unwrap()).await
    }

    /// A server with this configuration (scrape configs and all).
    pub async fn start_with_config(
        dir: tempfile::TempDir,
        extra_flags: &[&str],
        config: Config,
    ) -> Self {
        Self::start_serving(dir, extra_flags, config, "http", &client()).await
    }

    /// A server whose HTTP port speaks `scheme` (`https` with a TLS web configuration among the
    /// flags), ready once `/-/ready` answers 200 to `ready_client` (which carries whatever CA,
    /// client certificate and credentials the server asks for).
    pub async fn start_serving(
        dir: tempfile::TempDir,
        extra_flags: &[&str],
        config: Config,
        scheme: &str,
        ready_client: &reqwest::Client,
    ) -> Self {
        let mut args = vec![
            "quiver".to_string(),
            format!("--storage.path={}", dir.path().display()),
        ];
        args.extend(extra_flags.iter().map(|s| s.to_string()));
        let flags = Flags::parse_from(args);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let flight_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let flight = format!("http://{}", flight_listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(quiver::run_with_flight(
            flags,
            config,
            listener,
            Some(flight_listener),
            async move {
                let _ = stopped.await;
            },
        ));
        let server = TestServer {
            base,
            flight,
            dir,
            stop: Some(stop),
            task: Some(task),
        };
        wait_ready_with(&server.base, ready_client).await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server cleanly and hands back its data folder.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        tempfile::tempdir()
            .map(|empty| std::mem::replace(&mut self.dir, empty))
            .unwrap()
    }
}

/// Waits until `/-/ready` answers 200.
pub async fn wait_ready(base: &str) {
    wait_ready_with(base, &client()).await
}

/// Waits until `/-/ready` answers 200 to `client`.
pub async fn wait_ready_with(base: &str, client: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/-/ready")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET a JSON API path; answers (status, body).
pub async fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}")),
    )
}

/// GET a path's body as text.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// POST raw bytes; answers (status, body text).
pub async fn post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    try_post(url, body, headers)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// POST raw bytes; a connection failure is an error, not a panic.
pub async fn try_post(
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), reqwest::Error> {
    let mut req = client().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

/// A series to send: its labels and its (timestamp ms, value) samples.
pub type TestSeries<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

/// A remote-write request body for `(labels, samples)` pairs.
pub fn write_request(series: &[TestSeries<'_>]) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries::from_pairs(labels, samples))
            .collect(),
    };
    encode(&req)
}

pub const RW_HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// Exported series: label set (as JSON) -> (timestamps, values).
pub async fn export(base: &str, selector: &str) -> Vec<(Value, Vec<i64>, Vec<f64>)> {
    let r = client()
        .get(format!("{base}/api/v1/export"))
        .query(&[("match[]", selector)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let ts = v["timestamps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_i64().unwrap())
                .collect();
            let vals = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN))
                .collect();
            (v["metric"].clone(), ts, vals)
        })
        .collect()
}

/// The real `quiver` binary as a child process, on a fixed data folder.
pub struct ChildServer {
    pub base: String,
    child: Child,
}

impl ChildServer {
    pub async fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_on(data, free_port(), extra).await
    }

    /// Starts it on this HTTP port (for a configuration that has to name the port).
    pub async fn start_on(data: &Path, port: u16, extra: &[&str]) -> Self {
        let server = Self::spawn_on(data, port, extra);
        wait_ready(&server.base).await;
        server
    }

    /// Starts the process without waiting until it is ready (to kill it while it opens).
    pub fn spawn_on(data: &Path, port: u16, extra: &[&str]) -> Self {
        Self::spawn_with_env(data, port, extra, &[])
    }

    /// Starts it with these environment variables too (an object store's credentials).
    pub async fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let server = Self::spawn_with_env(data, free_port(), extra, env);
        wait_ready(&server.base).await;
        server
    }

    /// Stops it as SIGTERM does (a clean shutdown) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    fn spawn_with_env(data: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .envs(env.iter().copied())
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--flight.listen-address=127.0.0.1:{}", free_port()))
            .arg("--log.level=warn")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        ChildServer { base, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether an executable is on the PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Imports lines of the Prometheus text format (with or without timestamps).
pub async fn import(s: &TestServer, text: &str) {
    let (code, body) = post(
        &s.url("/api/v1/import/prometheus"),
        text.as_bytes().to_vec(),
        &[],
    )
    .await;
    assert_eq!(code, 204, "{body}");
}

/// The `data` of a successful answer of the API at `path` to `?query=q`.
async fn api_data(s: &TestServer, path: &str, q: &str) -> Value {
    let r = client()
        .get(s.url(path))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"].clone()
}

/// The result of an instant PromQL query (now).
pub async fn query(s: &TestServer, q: &str) -> Vec<Value> {
    api_data(s, "/api/v1/query", q).await["result"]
        .as_array()
        .unwrap()
        .clone()
}

/// The rows `/api/v1/sql` answers for `q`.
pub async fn sql_rows(s: &TestServer, q: &str) -> Vec<Value> {
    api_data(s, "/api/v1/sql", q).await["rows"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until `cond` holds, polling every 100 ms.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server started on a configuration file written into its data folder (so reloads re-read
/// it), with these extra files beside it.
pub async fn start_with_files(
    config: &str,
    files: &[(&str, &str)],
    flags: &[&str],
) -> (TestServer, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("quiver.yml");
    std::fs::write(&path, config).unwrap();
    let cfg = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    let flag = format!("--config.file={}", path.display());
    let mut all = vec![flag.as_str()];
    all.extend_from_slice(flags);
    let s = TestServer::start_with_config(dir, &all, cfg).await;
    (s, path)
}

/// Certificates made for one test with rcgen: a CA, a server certificate for `localhost` and
/// `127.0.0.1`, and a client certificate, both signed by the CA; and a client certificate from
/// another CA, which a server trusting the first must refuse. PEM text; nothing is committed.
pub struct TestPki {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub stranger_cert: String,
    pub stranger_key: String,
}

impl TestPki {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_params = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p
        };
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params("Quiver test CA").self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params("Quiver test CA"), ca_key);
        let leaf =
            |names: Vec<String>, usage: ExtendedKeyUsagePurpose, issuer: &Issuer<'_, KeyPair>| {
                let key = KeyPair::generate().unwrap();
                let mut p = CertificateParams::new(names).unwrap();
                p.distinguished_name.push(DnType::CommonName, "quiver test");
                p.extended_key_usages = vec![usage];
                (
                    p.signed_by(&key, issuer).unwrap().pem(),
                    key.serialize_pem(),
                )
            };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let (client_cert, client_key) = leaf(
            vec!["client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
        );
        let stranger = Issuer::new(ca_params("Another CA"), KeyPair::generate().unwrap());
        let (stranger_cert, stranger_key) = leaf(
            vec!["client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &stranger,
        );
        TestPki {
            ca: ca_cert.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
            stranger_cert,
            stranger_key,
        }
    }

    /// Writes `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key` into `dir`.
    pub fn write_to(&self, dir: &Path) {
        for (name, text) in [
            ("ca.pem", &self.ca),
            ("server.pem", &self.server_cert),
            ("server.key", &self.server_key),
            ("client.pem", &self.client_cert),
            ("client.key", &self.client_key),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// A reqwest client trusting the test CA (and nothing else).
    pub fn client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.as_bytes()).unwrap())
    }

    /// The same, presenting the CA-signed client certificate.
    pub fn client_with_cert(&self) -> reqwest::ClientBuilder {
        let pem = format!("{}{}", self.client_cert, self.client_key);
        self.client()
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
    }
}

/// Runs a Python script with arguments; answers its standard output as JSON.
pub fn python_json(script: &Path, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A channel to the server's Flight port.
pub async fn flight_channel(s: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(s.flight.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}
