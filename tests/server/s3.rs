//! Quiver on a real S3 API: `moto_server` (PyPI `moto[server]`) on loopback, reached with the
//! usual AWS environment. Blocks, compaction and retention go to the bucket, a node with an
//! empty local folder recovers every flushed series from it, and pyarrow reads the blocks
//! straight from the bucket.

use std::process::{Command, Stdio};

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};

use super::support::*;

const BUCKET: &str = "quiver-test";
const PREFIX: &str = "fleet";

/// `moto_server` on a free loopback port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Moto {
        let bin =
            which("moto_server").expect("moto_server is on the PATH (pip install 'moto[server]')");
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        eventually("moto_server to answer", 30, || async {
            client().get(&endpoint).send().await.is_ok()
        })
        .await;
        // Creating a bucket: a PUT on its name (moto does not check signatures).
        let r = client()
            .put(format!("{endpoint}/{BUCKET}"))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "creating the bucket: {}",
            r.status()
        );
        Moto { child, endpoint }
    }

    /// The environment a user would set.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The bucket as the test reads it, to see what Quiver put there.
    fn store(&self) -> impl ObjectStore {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_region("us-east-1")
            .build()
            .unwrap()
    }

    /// The block folders under the prefix.
    async fn blocks(&self) -> Vec<String> {
        let prefix = object_store::path::Path::from(PREFIX);
        let listed = self
            .store()
            .list_with_delimiter(Some(&prefix))
            .await
            .unwrap();
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|n| n.starts_with('b'))
            .collect();
        out.sort();
        out
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many samples `/api/v1/export` has for `selector`.
async fn exported(base: &str, selector: &str) -> usize {
    export(base, selector).await.iter().map(|s| s.1.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs moto_server (PyPI moto[server]) and python3 with pyarrow"]
async fn quiver_keeps_its_blocks_in_s3_and_a_fresh_node_recovers_them() {
    let moto = Moto::start().await;
    let env_owned = moto.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = format!("--storage.object-store.url=s3://{BUCKET}/{PREFIX}");
    // No scrape configs: the bucket holds only what the test writes.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("quiver.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let config = format!("--config.file={}", config.display());
    let flags = [
        url.as_str(),
        config.as_str(),
        "--web.enable-admin-api",
        "--storage.tsdb.min-block-duration=1m",
        "--storage.maintenance-interval=200ms",
        "--storage.retention.time=5d",
    ];
    let first = tempfile::tempdir().unwrap();
    let server = ChildServer::start_with_env(first.path(), &flags, &env).await;

    // Recent samples over 30 one-minute windows; samples of two days ago over 10 windows (a
    // day that is over, so compaction merges its blocks: ranges are the block duration and a
    // day); samples of eight days ago (past the five-day retention).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now_ms - 45 * 60_000;
    let recent: Vec<(i64, f64)> = (0..120).map(|i| (start + i * 15_000, i as f64)).collect();
    let past: Vec<(i64, f64)> = (0..40)
        .map(|i| (now_ms - 2 * 86_400_000 + i * 15_000, i as f64))
        .collect();
    let old: Vec<(i64, f64)> = (0..4)
        .map(|i| (now_ms - 8 * 86_400_000 + i * 15_000, 1.0))
        .collect();
    // A flush writes one block per one-minute window with samples.
    let windows: std::collections::BTreeSet<i64> = recent
        .iter()
        .chain(&past)
        .chain(&old)
        .map(|(t, _)| t.div_euclid(60_000))
        .collect();
    let body = write_request(&[
        (vec![("__name__", "gpu_util"), ("gpu", "0")], recent.clone()),
        (vec![("__name__", "gpu_util"), ("gpu", "1")], recent),
        (vec![("__name__", "gpu_past"), ("gpu", "0")], past),
        (vec![("__name__", "expired"), ("gpu", "0")], old),
    ]);
    assert_eq!(
        post(&format!("{}/api/v1/write", server.base), body, &RW_HEADERS)
            .await
            .0,
        204
    );
    let (code, text) = post(&format!("{}/api/v1/admin/flush", server.base), vec![], &[]).await;
    assert!(code == 200 || code == 204, "flush: {code} {text}");

    // Blocks are in the bucket; compaction merges the past day's one-minute blocks and
    // retention drops what is past five days.
    assert!(!moto.blocks().await.is_empty(), "no block in the bucket");
    eventually("compaction to merge blocks in the bucket", 60, || async {
        moto.blocks().await.len() < windows.len() - 1
    })
    .await;
    eventually("retention to drop the expired series", 60, || async {
        exported(&server.base, "expired").await == 0
    })
    .await;
    assert_eq!(exported(&server.base, "gpu_util").await, 240);
    assert_eq!(exported(&server.base, "gpu_past").await, 40);
    let manifest = moto
        .store()
        .get(&object_store::path::Path::from(format!(
            "{PREFIX}/manifest.json"
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!manifest.is_empty());
    server.stop();

    // A new node, its local folder empty, finds every flushed sample in the bucket.
    let second = tempfile::tempdir().unwrap();
    let server = ChildServer::start_with_env(second.path(), &flags, &env).await;
    eventually("the new node to read the bucket", 30, || async {
        exported(&server.base, "gpu_util").await == 240
    })
    .await;
    assert_eq!(exported(&server.base, "gpu_past").await, 40);
    assert_eq!(exported(&server.base, "expired").await, 0);
    server.stop();

    // pyarrow reads the blocks straight from the bucket, without Quiver.
    let script = second.path().join("read_s3.py");
    std::fs::write(
        &script,
        r#"
import json, sys
import pyarrow.dataset as ds
import pyarrow.fs as pafs
endpoint, bucket, prefix = sys.argv[1:4]
s3 = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="testing",
                       secret_key="testing", region="us-east-1")
files = [f.path for f in s3.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}", recursive=True))
         if f.path.endswith("samples.parquet")]
rows = sum(ds.dataset(f, filesystem=s3, format="parquet").count_rows() for f in files)
print(json.dumps({"files": len(files), "rows": rows}))
"#,
    )
    .unwrap();
    let out = python_json(&script, &[&moto.endpoint, BUCKET, PREFIX]);
    assert!(out["files"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(out["rows"], 280, "{out}");
}

/// Spawns the binary and waits for it to exit within `secs`; answers its exit code and stderr
/// (`None` when it was still running, and then it is killed).
fn run_to_exit(
    data: &std::path::Path,
    flags: &[&str],
    env: &[(&str, &str)],
    secs: u64,
) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .envs(env.iter().copied())
        .arg(format!("--storage.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(format!("--flight.listen-address=127.0.0.1:{}", free_port()))
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.code().unwrap_or(-1), err));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs moto_server (PyPI moto[server])"]
async fn a_second_writer_on_the_same_prefix_refuses_to_start() {
    let moto = Moto::start().await;
    let env_owned = moto.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = format!("--storage.object-store.url=s3://{BUCKET}/{PREFIX}");
    let flags = [url.as_str(), "--storage.lease-ttl=3s"];
    let a_dir = tempfile::tempdir().unwrap();
    let a = ChildServer::start_with_env(a_dir.path(), &flags, &env).await;

    // A second server on the prefix stops at once, saying why.
    let b_dir = tempfile::tempdir().unwrap();
    let (code, err) = run_to_exit(b_dir.path(), &flags, &env, 30).expect("the second writer exits");
    assert_ne!(code, 0);
    assert!(
        err.contains("another Quiver") && err.contains("lease"),
        "{err}"
    );
    // Still refused after longer than the time to live: the first renews its lease.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let (code, _) = run_to_exit(b_dir.path(), &flags, &env, 30).expect("the second writer exits");
    assert_ne!(code, 0);

    // A clean stop releases it: the next server starts at once.
    a.stop();
    let b = ChildServer::start_with_env(b_dir.path(), &flags, &env).await;
    // Killed, the lease stays until it expires, then a third server takes it over.
    b.kill_9();
    let c_dir = tempfile::tempdir().unwrap();
    let (code, err) = run_to_exit(c_dir.path(), &flags, &env, 30).expect("refused while live");
    assert_ne!(code, 0, "{err}");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let c = ChildServer::start_with_env(c_dir.path(), &flags, &env).await;
    c.stop();
}
