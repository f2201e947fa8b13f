//! Command-line flags (Prometheus's names) and the configuration file.
//!
//! Without `--config.file`, the embedded default (`default.yml`) applies: it scrapes Quiver's
//! own `/metrics` (on the port Quiver listens on). The file is read strictly ([`file`]); an
//! error names the file, the line and the field.

pub mod file;
pub mod remote;
pub mod web;

use std::path::{Path, PathBuf};

use clap::Parser;

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

/// Quiver's flags. Names follow Prometheus's, so existing unit files and habits carry over.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "quiver",
    version,
    about = "A columnar metrics database that speaks Prometheus"
)]
pub struct Flags {
    /// Configuration file (Prometheus's format). Without it an embedded default applies.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,

    /// Address to serve the HTTP API on.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub web_listen_address: String,

    /// Web configuration file (Prometheus's format): TLS for the HTTP and Flight ports,
    /// basic-auth users, response headers.
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<PathBuf>,

    /// Folder for the WAL (and, by default, the blocks).
    #[arg(
        long = "storage.path",
        alias = "storage.tsdb.path",
        default_value = "./data"
    )]
    pub storage_path: PathBuf,

    /// How long to keep samples (Prometheus duration: 15d, 12h, 1y).
    #[arg(
        long = "storage.retention.time",
        alias = "storage.tsdb.retention.time",
        default_value = "15d"
    )]
    pub storage_retention_time: String,

    /// Where blocks live: a local folder (default: `blocks/` under the storage path) or
    /// `s3://bucket/prefix`, `gs://…`, `az://…` (credentials from the usual environment variables).
    #[arg(long = "storage.object-store.url")]
    pub storage_object_store_url: Option<String>,

    /// Time span of the head before it is cut into a block (Prometheus duration).
    #[arg(
        long = "storage.tsdb.min-block-duration",
        default_value = "2h",
        hide = true
    )]
    pub block_duration: String,

    /// How long the lease on an object-store block store (one writer per bucket prefix) lasts
    /// without renewal; renewed every third of it. A server that died holds the prefix this
    /// long.
    #[arg(long = "storage.lease-ttl", default_value = "1m")]
    pub storage_lease_ttl: String,

    /// How often flush, compaction and retention run.
    #[arg(
        long = "storage.maintenance-interval",
        default_value = "1m",
        hide = true
    )]
    pub maintenance_interval: String,

    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,

    /// Enable admin endpoints (`/api/v1/admin/flush`).
    #[arg(long = "web.enable-admin-api")]
    pub web_enable_admin_api: bool,

    /// Enable `/-/quit` (and `/-/reload`).
    #[arg(long = "web.enable-lifecycle")]
    pub web_enable_lifecycle: bool,

    /// Accepted for compatibility: Quiver's remote-write receiver is always on.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub web_enable_remote_write_receiver: bool,

    /// Prometheus's feature flags (comma-separated or repeated). Quiver acts on
    /// `otlp-deltatocumulative` (OTLP delta sums and histograms made cumulative); the others are
    /// accepted and logged as not acted on.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    pub enable_feature: Vec<String>,

    /// Accepted for compatibility: Quiver's OTLP receiver (`/api/v1/otlp/v1/metrics`) is
    /// always on.
    #[arg(long = "web.enable-otlp-receiver")]
    pub web_enable_otlp_receiver: bool,

    /// Largest request body accepted (bytes, compressed as sent).
    #[arg(long = "web.max-request-body-bytes", default_value_t = 32 << 20)]
    pub max_request_body_bytes: usize,

    /// How far back a selector looks for a sample at each evaluation step.
    #[arg(long = "query.lookback-delta", default_value = "5m")]
    pub query_lookback_delta: String,

    /// Longest a query may run before it is cancelled.
    #[arg(long = "query.timeout", default_value = "2m")]
    pub query_timeout: String,

    /// Most samples a single query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: usize,

    /// How long remote-write queues may go on sending what they hold when they stop (at
    /// shutdown, or when a reload removes or changes their entry).
    #[arg(long = "storage.remote.flush-deadline", default_value = "1m")]
    pub remote_flush_deadline: String,

    /// Most samples one remote read (`/api/v1/read`) returns over all its queries; 0 means
    /// `--query.max-samples` (Prometheus reads 0 as no limit; Quiver keeps reads bounded).
    #[arg(
        long = "storage.remote.read-sample-limit",
        default_value_t = 50_000_000
    )]
    pub remote_read_sample_limit: usize,

    /// Most queries (PromQL and SQL, over HTTP and Flight) that run at once; the others wait
    /// their turn, within their timeout.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: usize,

    /// Most memory the operators of all queries in flight may hold together (sorts, joins,
    /// aggregations): a byte size (`4GB`, `512MiB`) or a share of the machine's memory
    /// (`25%`). A query past it fails with `execution` (422); the others go on.
    #[arg(long = "query.max-memory", default_value = "25%")]
    pub query_max_memory: String,

    /// Most rows `/api/v1/sql` answers (a request's `limit` is capped to it).
    #[arg(long = "sql.max-rows", default_value_t = 1_000_000)]
    pub sql_max_rows: usize,

    /// Largest remote-write body after decompression, and largest import body (bytes).
    #[arg(long = "web.max-decoded-body-bytes", default_value_t = 256 << 20)]
    pub max_decoded_body_bytes: usize,

    /// Where Arrow Flight and Flight SQL listen (empty: no Flight).
    #[arg(long = "flight.listen-address", default_value = "0.0.0.0:50051")]
    pub flight_listen_address: String,

    /// A file holding a bearer token that Flight and `/api/v1/sql` require.
    #[arg(long = "flight.token-file")]
    pub flight_token_file: Option<PathBuf>,

    /// The URL under which Quiver is reached from outside (in alerts' `generatorURL` and
    /// templates' `$externalURL`). Default: `http://<host name>:<port>`.
    #[arg(long = "web.external-url")]
    pub web_external_url: Option<String>,

    /// Minimum time between two sends of the same firing alert to Alertmanager.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m")]
    pub rules_alert_resend_delay: String,

    /// How long Quiver may have been down for `for` state to be restored.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h")]
    pub rules_alert_for_outage_tolerance: String,

    /// After a restart, an alert whose `for` is at least this long waits at least this long
    /// before it fires.
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m")]
    pub rules_alert_for_grace_period: String,

    /// The most alerts waiting to be sent to Alertmanager (the oldest go first).
    #[arg(
        long = "alertmanager.notification-queue-capacity",
        default_value_t = 10_000
    )]
    pub alertmanager_queue_capacity: usize,
}

impl Flags {
    /// Flags with every default (for tests).
    pub fn defaults() -> Self {
        Flags::parse_from(["quiver"])
    }

    /// Every flag by its name, as `/api/v1/status/flags` shows them.
    pub fn to_map(&self) -> std::collections::BTreeMap<&'static str, String> {
        let opt = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        [
            ("config.file", opt(&self.config_file)),
            ("web.listen-address", self.web_listen_address.clone()),
            ("web.config.file", opt(&self.web_config_file)),
            ("storage.path", self.storage_path.display().to_string()),
            (
                "storage.retention.time",
                self.storage_retention_time.clone(),
            ),
            (
                "storage.object-store.url",
                self.storage_object_store_url.clone().unwrap_or_default(),
            ),
            (
                "storage.tsdb.min-block-duration",
                self.block_duration.clone(),
            ),
            ("storage.lease-ttl", self.storage_lease_ttl.clone()),
            (
                "storage.maintenance-interval",
                self.maintenance_interval.clone(),
            ),
            ("log.level", self.log_level.clone()),
            (
                "web.enable-admin-api",
                self.web_enable_admin_api.to_string(),
            ),
            (
                "web.enable-lifecycle",
                self.web_enable_lifecycle.to_string(),
            ),
            (
                "web.enable-remote-write-receiver",
                self.web_enable_remote_write_receiver.to_string(),
            ),
            (
                "web.enable-otlp-receiver",
                self.web_enable_otlp_receiver.to_string(),
            ),
            ("enable-feature", self.enable_feature.join(",")),
            (
                "web.max-request-body-bytes",
                self.max_request_body_bytes.to_string(),
            ),
            (
                "web.max-decoded-body-bytes",
                self.max_decoded_body_bytes.to_string(),
            ),
            ("query.lookback-delta", self.query_lookback_delta.clone()),
            (
                "storage.remote.flush-deadline",
                self.remote_flush_deadline.clone(),
            ),
            ("query.timeout", self.query_timeout.clone()),
            ("query.max-samples", self.query_max_samples.to_string()),
            (
                "storage.remote.read-sample-limit",
                self.remote_read_sample_limit.to_string(),
            ),
            (
                "query.max-concurrency",
                self.query_max_concurrency.to_string(),
            ),
            ("query.max-memory", self.query_max_memory.clone()),
            ("sql.max-rows", self.sql_max_rows.to_string()),
            ("flight.listen-address", self.flight_listen_address.clone()),
            ("flight.token-file", opt(&self.flight_token_file)),
            (
                "web.external-url",
                self.web_external_url.clone().unwrap_or_default(),
            ),
            (
                "rules.alert.resend-delay",
                self.rules_alert_resend_delay.clone(),
            ),
            (
                "rules.alert.for-outage-tolerance",
                self.rules_alert_for_outage_tolerance.clone(),
            ),
            (
                "rules.alert.for-grace-period",
                self.rules_alert_for_grace_period.clone(),
            ),
            (
                "alertmanager.notification-queue-capacity",
                self.alertmanager_queue_capacity.to_string(),
            ),
        ]
        .into_iter()
        .collect()
    }
}

/// A memory bound: a byte size (`4GB`, `512MiB`, `1073741824`) or a share of `total` (`25%`).
pub fn parse_memory_limit(s: &str, total: u64) -> Option<usize> {
    let s = s.trim();
    let bytes = match s.strip_suffix('%') {
        Some(p) => {
            let p: f64 = p
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| *p > 0.0 && *p <= 100.0)?;
            (total as f64 * p / 100.0) as u64
        }
        None => file::parse_byte_size(s)?,
    };
    usize::try_from(bytes).ok()
}

/// The machine's memory in bytes (`MemTotal` of /proc/meminfo; 8 GiB where it cannot be read).
pub fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kb.checked_mul(1024)
        })
        .unwrap_or(8 << 30)
}

/// Fields that hold secrets, wherever they stand (Prometheus's `Secret` fields): basic auth
/// passwords, `authorization` credentials, bearer tokens, OAuth 2 client secrets, cloud secret
/// keys and service-discovery tokens. `key` is a secret inside `tls_config` (an inline private
/// key) only.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "credentials",
    "bearer_token",
    "client_secret",
    "secret_key",
    "token",
    // remote_write headers often carry API keys.
    "headers",
];

/// Replaces the value of every secret field below `v` with `<secret>`.
fn redact(v: &mut serde_yaml_ng::Value, in_tls_config: bool) {
    use serde_yaml_ng::Value;
    match v {
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                let key = k.as_str().unwrap_or("");
                let secret = SECRET_FIELDS.contains(&key) || (in_tls_config && key == "key");
                if secret && !child.is_null() {
                    *child = Value::String("<secret>".into());
                } else {
                    redact(child, key == "tls_config");
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|i| redact(i, false)),
        Value::Tagged(t) => redact(&mut t.value, in_tls_config),
        _ => {}
    }
}

/// The configuration file as read.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`<embedded default>` when no file was given).
    pub source: String,
    pub yaml: String,
    pub file: file::ConfigFile,
}

/// The source name of the embedded default.
pub const EMBEDDED: &str = "<embedded default>";

/// A configuration error that names the file, and the line and column when known.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl Config {
    /// Reads `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (source, yaml) = match path {
            None => (EMBEDDED.to_string(), DEFAULT_CONFIG.to_string()),
            Some(p) => {
                let yaml = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    file: p.display().to_string(),
                    location: None,
                    message: format!("cannot read: {e}"),
                })?;
                (p.display().to_string(), yaml)
            }
        };
        let file = file::ConfigFile::parse(&source, &yaml)?;
        for section in file.not_acted_on() {
            tracing::warn!(
                "{source}: the {section:?} section is accepted and not acted on: Quiver does not \
                 implement it yet"
            );
        }
        Ok(Config { source, yaml, file })
    }

    /// A configuration from text (tests, and tools that hold the file in memory).
    pub fn from_yaml(source: &str, yaml: &str) -> Result<Self, ConfigError> {
        Ok(Config {
            source: source.to_string(),
            yaml: yaml.to_string(),
            file: file::ConfigFile::parse(source, yaml)?,
        })
    }

    /// The configuration as `/api/v1/status/config` shows it: the file's YAML with every
    /// secret replaced by `<secret>`, as Prometheus shows its own (comments are not kept, as
    /// Prometheus keeps none).
    pub fn redacted_yaml(&self) -> String {
        match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&self.yaml) {
            Ok(mut v) => {
                redact(&mut v, false);
                serde_yaml_ng::to_string(&v).unwrap_or_default()
            }
            // It parsed when it was loaded; never show the raw text in its place.
            Err(_) => String::new(),
        }
    }

    /// The embedded default, scraping Quiver itself on `port`.
    pub fn embedded(port: u16) -> Self {
        let yaml = DEFAULT_CONFIG.replace("localhost:9090", &format!("localhost:{port}"));
        let file = file::ConfigFile::parse(EMBEDDED, &yaml).expect("the embedded default is valid");
        Config {
            source: EMBEDDED.to_string(),
            yaml,
            file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_flag_names_and_aliases_parse() {
        let f = Flags::parse_from([
            "quiver",
            "--storage.tsdb.path=/tmp/x",
            "--web.listen-address=127.0.0.1:0",
            "--storage.tsdb.retention.time=30d",
            "--web.enable-admin-api",
        ]);
        assert_eq!(f.storage_path, PathBuf::from("/tmp/x"));
        assert_eq!(f.storage_retention_time, "30d");
        assert!(f.web_enable_admin_api && !f.web_enable_lifecycle);
    }

    #[test]
    fn sections_quiver_does_not_act_on_are_named() {
        let c =
            Config::from_yaml("t.yml", "remote_read:\n  - url: http://x/api/v1/read\n").unwrap();
        assert_eq!(c.file.not_acted_on(), ["remote_read"]);
        assert!(Config::embedded(9090).file.not_acted_on().is_empty());
    }

    #[test]
    fn every_secret_is_redacted_in_the_shown_config() {
        let yaml = r#"
scrape_configs:
  - job_name: a
    basic_auth: {username: u, password: hunter2}
  - job_name: b
    authorization: {type: Bearer, credentials: tok-123}
    tls_config: {key: "-----BEGIN PRIVATE KEY-----", key_file: /k.pem}
  - job_name: c
    bearer_token: tok-456
    oauth2: {client_id: id, client_secret: cs-789}
alerting:
  alertmanagers:
    - basic_auth: {username: am, password: &pw am-pass}
      http_headers: {x: {values: [v]}}
      authorization: {credentials: *pw}
"#;
        let c = Config {
            source: "t".into(),
            yaml: yaml.into(),
            file: Default::default(),
        };
        let shown = c.redacted_yaml();
        for secret in [
            "hunter2",
            "tok-123",
            "PRIVATE KEY",
            "tok-456",
            "cs-789",
            "am-pass",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert_eq!(shown.matches("<secret>").count(), 7, "{shown}");
        // What is not secret stays.
        for kept in [
            "username: u",
            "key_file: /k.pem",
            "client_id: id",
            "job_name: c",
        ] {
            assert!(shown.contains(kept), "{kept} missing:\n{shown}");
        }
    }

    #[test]
    fn a_yaml_alias_bomb_is_refused_quickly() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            let refs = [prev.as_str(); 10].join(", ");
            yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        yaml.push_str("scrape_configs: *a11\n");
        let started = std::time::Instant::now();
        let e = Config::from_yaml("bomb.yml", &yaml).expect_err("an alias bomb");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(e.to_string().starts_with("bomb.yml"), "{e}");
    }

    #[test]
    fn memory_limits_are_sizes_or_shares() {
        assert_eq!(parse_memory_limit("25%", 8 << 30), Some(2 << 30));
        assert_eq!(parse_memory_limit("512MiB", 0), Some(512 << 20));
        assert_eq!(parse_memory_limit("4GB", 0), Some(4 << 30));
        assert_eq!(parse_memory_limit("0%", 8 << 30), None);
        assert_eq!(parse_memory_limit("150%", 8 << 30), None);
        assert_eq!(parse_memory_limit("lots", 8 << 30), None);
    }

    #[test]
    fn embedded_default_config_is_valid_yaml() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.file.scrape_configs[0].job_name, "quiver");
        let c = Config::embedded(9123);
        assert_eq!(
            c.file.scrape_configs[0].static_configs[0].targets,
            ["localhost:9123"]
        );
    }

    #[test]
    fn broken_config_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prometheus.yml");
        std::fs::write(
            &path,
            "global:\n  scrape_interval: 15s\n scrape_configs: [\n",
        )
        .unwrap();
        let err = Config::load(Some(&path)).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("{}:", path.display())),
            "{err}"
        );
        assert!(err.location.is_some(), "{err}");
    }
}
