//! Command-line flags (Prometheus's names) and the configuration file.
//!
//! Without `--config.file`, the embedded default (`default.yml`) applies: it scrapes Quiver's
//! own `/metrics`. Scraping itself arrives with the scrape issue; until then the file is read
//! and checked as YAML so a broken file fails start-up with its line and column.

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

    /// Largest remote-write body after decompression, and largest import body (bytes).
    #[arg(long = "web.max-decoded-body-bytes", default_value_t = 256 << 20)]
    pub max_decoded_body_bytes: usize,
}

impl Flags {
    /// Flags with every default (for tests).
    pub fn defaults() -> Self {
        Flags::parse_from(["quiver"])
    }
}

/// The configuration file as read.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`<embedded default>` when no file was given).
    pub source: String,
    pub yaml: String,
    pub doc: serde_yaml_ng::Value,
}

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
            None => ("<embedded default>".to_string(), DEFAULT_CONFIG.to_string()),
            Some(p) => {
                let yaml = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    file: p.display().to_string(),
                    location: None,
                    message: format!("cannot read: {e}"),
                })?;
                (p.display().to_string(), yaml)
            }
        };
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&yaml).map_err(|e| ConfigError {
                file: source.clone(),
                location: e.location().map(|l| (l.line(), l.column())),
                message: e.to_string(),
            })?;
        if !(doc.is_mapping() || doc.is_null()) {
            return Err(ConfigError {
                file: source,
                location: None,
                message: "the top level must be a mapping".into(),
            });
        }
        Ok(Config { source, yaml, doc })
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
    fn embedded_default_config_is_valid_yaml() {
        let c = Config::load(None).unwrap();
        assert!(c.doc.get("scrape_configs").is_some());
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
