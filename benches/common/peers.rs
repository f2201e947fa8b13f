//! Starting Quiver and its peers (Prometheus, VictoriaMetrics) as child processes for the
//! side-by-side benchmarks, each pinned to its own core when `taskset` is there.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A numeric setting from the environment, or its default.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The core the servers are pinned to: core 1 when there are two or more (the bench itself
/// runs on core 0 under `taskset -c 0`), none on a one-core machine.
pub fn server_core() -> Option<usize> {
    (std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        > 1)
    .then_some(1)
}

/// The bench's own runtime (its clients and feeders): two workers.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A running server.
pub struct Peer {
    pub name: &'static str,
    pub base: String,
    /// Quiver's Flight address (`grpc://127.0.0.1:<port>`).
    pub flight: Option<String>,
    pub data: PathBuf,
    child: Child,
}

impl Peer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        self.status_kb("VmRSS:") * 1024
    }

    /// Peak resident memory in bytes so far (Linux `VmHWM`).
    pub fn peak_rss_bytes(&self) -> u64 {
        self.status_kb("VmHWM:") * 1024
    }

    /// A `kB` field of `/proc/<pid>/status`, 0 when unreadable.
    fn status_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// User + system CPU seconds used so far (Linux).
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command pinned to `core` when `taskset` exists.
fn pinned(program: &Path, core: Option<usize>) -> Command {
    match (core, which("taskset")) {
        (Some(c), Some(taskset)) => {
            let mut cmd = Command::new(taskset);
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        _ => Command::new(program),
    }
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = ureq_get(url)
            && r == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} not ready");
}

/// A minimal blocking GET that answers the status code (no client dependency needed).
fn ureq_get(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad response"))
}

pub fn start_quiver(binary: &Path, dir: &Path, core: Option<usize>) -> Peer {
    start_quiver_args(binary, dir, core, &[])
}

/// Quiver with extra flags (`--config.file=…`).
pub fn start_quiver_args(binary: &Path, dir: &Path, core: Option<usize>, extra: &[String]) -> Peer {
    let port = free_port();
    let flight_port = free_port();
    let data = dir.join("quiver");
    let child = pinned(binary, core)
        .args(extra)
        .arg(format!("--storage.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--flight.listen-address=127.0.0.1:{flight_port}"))
        .arg("--web.enable-admin-api")
        .arg("--storage.retention.time=100y")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("quiver starts");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/-/ready"));
    Peer {
        name: "quiver",
        base,
        flight: Some(format!("grpc://127.0.0.1:{flight_port}")),
        data,
        child,
    }
}

pub fn start_prometheus(dir: &Path, core: Option<usize>) -> Option<Peer> {
    start_prometheus_config(dir, core, "global:\n  scrape_interval: 1h\n")
}

/// Prometheus with this configuration file.
pub fn start_prometheus_config(dir: &Path, core: Option<usize>, yaml: &str) -> Option<Peer> {
    start_prometheus_args(dir, core, yaml, &[])
}

/// Prometheus with this configuration file and extra flags (`--enable-feature=…`).
pub fn start_prometheus_args(
    dir: &Path,
    core: Option<usize>,
    yaml: &str,
    extra: &[String],
) -> Option<Peer> {
    let binary = which("prometheus")?;
    let port = free_port();
    let data = dir.join("prometheus");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(dir.join("prometheus.yml"), yaml).unwrap();
    let child = pinned(&binary, core)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--web.enable-admin-api")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/-/ready"));
    Some(Peer {
        name: "prometheus",
        flight: None,
        base,
        data,
        child,
    })
}

pub fn start_victoria_metrics(dir: &Path, core: Option<usize>) -> Option<Peer> {
    let binary = which("victoria-metrics")?;
    let port = free_port();
    let data = dir.join("vmdata");
    let child = pinned(&binary, core)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", data.display()))
        .arg("-retentionPeriod=100y")
        .arg("-search.disableCache")
        .arg("-loggerLevel=ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/health"));
    Some(Peer {
        name: "victoria-metrics",
        flight: None,
        base,
        data,
        child,
    })
}

/// Bytes of every file below `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Remote-writes pre-encoded bodies, the workers' streams interleaved so every receiver sees
/// time move forward (Prometheus refuses samples far behind its head).
pub async fn remote_write_all(base: &str, bodies: &[Vec<Vec<u8>>]) {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/write");
    let longest = bodies.iter().map(Vec::len).max().unwrap_or(0);
    let ordered = (0..longest).flat_map(|i| bodies.iter().filter_map(move |w| w.get(i)));
    for body in ordered {
        let r = client
            .post(&url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await
            .expect("request sent");
        assert!(r.status().is_success(), "{url}: {}", r.status());
    }
}
