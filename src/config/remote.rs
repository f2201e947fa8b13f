//! The configuration sections for the Prometheus protocols beyond scraping: `remote_write`
//! (where Quiver sends what it stores) and `otlp` (how OTLP metrics become series), with
//! Prometheus's keys, defaults and checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::file::{Authorization, BasicAuth, PromDuration, TlsConfig, yes};
use crate::relabel::RelabelConfig;

/// One `remote_write` entry: a store to send every sample to, as Prometheus's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: PromDuration,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// `prometheus.WriteRequest` (1.0, the default) or `io.prometheus.write.v2.Request`.
    #[serde(default)]
    pub protobuf_message: Option<String>,
    /// Accepted when false: Quiver stores no exemplars or native histograms to send.
    #[serde(default)]
    pub send_exemplars: bool,
    #[serde(default)]
    pub send_native_histograms: bool,
    #[serde(default)]
    pub round_robin_dns: bool,
    #[serde(default)]
    pub queue_config: QueueConfig,
    /// Accepted; 1.0 metadata is not sent (2.0 carries none either: Quiver keeps no metadata
    /// per series).
    #[serde(default)]
    pub metadata_config: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes")]
    pub enable_http2: bool,
}

fn default_remote_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}

/// `remote_write[].queue_config`, Prometheus's keys and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Samples each shard holds before the WAL reader waits.
    pub capacity: usize,
    pub max_shards: usize,
    /// Quiver runs this many shards (it does not reshard as Prometheus does).
    pub min_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: PromDuration,
    pub min_backoff: PromDuration,
    pub max_backoff: PromDuration,
    pub retry_on_http_429: bool,
    /// Samples older than this are dropped, not sent (0: no limit).
    pub sample_age_limit: PromDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: PromDuration(Duration::from_secs(5)),
            min_backoff: PromDuration(Duration::from_millis(30)),
            max_backoff: PromDuration(Duration::from_secs(5)),
            retry_on_http_429: false,
            sample_age_limit: PromDuration(Duration::ZERO),
        }
    }
}

/// The two messages a remote-write sender can send.
pub const REMOTE_WRITE_V1: &str = "prometheus.WriteRequest";
pub const REMOTE_WRITE_V2: &str = "io.prometheus.write.v2.Request";

/// Headers a `remote_write` entry may not set (Prometheus's list): the protocol's own.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
];

/// Most `remote_write` entries a configuration may have.
pub const MAX_REMOTE_WRITES: usize = 64;

impl RemoteWriteConfig {
    /// Checks one entry; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ("url".to_string(), format!("is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            // It would show in the metrics' labels, the logs and the shown configuration.
            return Err((
                "url".into(),
                "must not carry credentials: put them in basic_auth".into(),
            ));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err((
                "url".into(),
                format!("{:?}: the scheme must be http or https", self.url),
            ));
        }
        if let Some(m) = &self.protobuf_message
            && m != REMOTE_WRITE_V1
            && m != REMOTE_WRITE_V2
        {
            return Err((
                "protobuf_message".into(),
                format!(
                    "unknown remote write protobuf message {m:?} (one of {REMOTE_WRITE_V1}, {REMOTE_WRITE_V2})"
                ),
            ));
        }
        if self.send_exemplars {
            return Err((
                "send_exemplars".into(),
                "Quiver stores no exemplars to send: leave it false".into(),
            ));
        }
        for (name, value) in &self.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err((
                    "headers".into(),
                    format!("{name} is a reserved header. It must not be changed"),
                ));
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err((
                    "headers".into(),
                    format!(
                        "{name:?} is not a valid header name, or its value not a valid header value"
                    ),
                ));
            }
        }
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        if u8::from(self.basic_auth.is_some())
            + u8::from(self.authorization.is_some())
            + u8::from(bearer)
            > 1
        {
            return Err((
                "basic_auth".into(),
                "at most one of basic_auth, authorization and bearer_token(_file) may be set"
                    .into(),
            ));
        }
        let q = &self.queue_config;
        let positive = [
            ("queue_config.capacity", q.capacity),
            ("queue_config.max_shards", q.max_shards),
            ("queue_config.min_shards", q.min_shards),
            ("queue_config.max_samples_per_send", q.max_samples_per_send),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err((field.into(), "must be positive".into()));
            }
        }
        if q.min_shards > q.max_shards {
            return Err((
                "queue_config.min_shards".into(),
                format!("{} is more than max_shards {}", q.min_shards, q.max_shards),
            ));
        }
        // Bounds that keep one entry's memory and connections reasonable.
        if q.min_shards > 1_000
            || q.max_samples_per_send > 1_000_000
            || q.capacity.saturating_mul(q.min_shards) > 10_000_000
        {
            return Err((
                "queue_config".into(),
                "min_shards is at most 1,000, max_samples_per_send 1,000,000, and capacity times \
                 min_shards 10,000,000 samples"
                    .into(),
            ));
        }
        if q.batch_send_deadline.0.is_zero()
            || q.min_backoff.0.is_zero()
            || q.max_backoff.0 < q.min_backoff.0
        {
            return Err((
                "queue_config".into(),
                "batch_send_deadline and min_backoff must be positive, and max_backoff at least min_backoff".into(),
            ));
        }
        if self.remote_timeout.0.is_zero() {
            return Err(("remote_timeout".into(), "must be positive".into()));
        }
        for (k, r) in self.write_relabel_configs.iter().enumerate() {
            r.validate()
                .map_err(|m| (format!("write_relabel_configs[{k}]"), m))?;
        }
        Ok(())
    }
}

/// The `otlp:` section: Prometheus's keys and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    pub promote_resource_attributes: Vec<String>,
    pub promote_all_resource_attributes: bool,
    pub ignore_resource_attributes: Vec<String>,
    pub translation_strategy: String,
    pub keep_identifying_resource_attributes: bool,
    pub convert_histograms_to_nhcb: bool,
    pub promote_scope_metadata: bool,
    pub label_name_underscore_sanitization: bool,
    pub label_name_preserve_multiple_underscores: bool,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            promote_resource_attributes: Vec::new(),
            promote_all_resource_attributes: false,
            ignore_resource_attributes: Vec::new(),
            translation_strategy: quiver_ingest::otlp::Strategy::default().to_string(),
            keep_identifying_resource_attributes: false,
            convert_histograms_to_nhcb: false,
            promote_scope_metadata: false,
            label_name_underscore_sanitization: true,
            label_name_preserve_multiple_underscores: true,
        }
    }
}

impl OtlpConfig {
    /// Checks the section as Prometheus does, and gives the converter's options.
    pub fn options(&self, lookback_ms: i64) -> Result<quiver_ingest::otlp::Options, String> {
        use quiver_ingest::otlp::Strategy;
        let strategy = Strategy::parse(&self.translation_strategy).ok_or_else(|| {
            format!(
                "otlp.translation_strategy: unsupported OTLP translation strategy {:?} (one of \
                 UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, \
                 NoUTF8EscapingWithSuffixes, NoTranslation)",
                self.translation_strategy
            )
        })?;
        if self.promote_all_resource_attributes && !self.promote_resource_attributes.is_empty() {
            return Err("otlp: 'promote_all_resource_attributes' and \
                        'promote_resource_attributes' cannot be configured simultaneously"
                .into());
        }
        if !self.ignore_resource_attributes.is_empty() && !self.promote_all_resource_attributes {
            return Err(
                "otlp: 'ignore_resource_attributes' cannot be configured unless \
                        'promote_all_resource_attributes' is true"
                    .into(),
            );
        }
        if self.convert_histograms_to_nhcb {
            return Err(
                "otlp.convert_histograms_to_nhcb: native histograms with custom buckets \
                        are not supported yet (Quiver does not store native histograms)"
                    .into(),
            );
        }
        let list = |key: &str, items: &[String]| -> Result<Vec<String>, String> {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let item = item.trim();
                if item.is_empty() {
                    return Err(format!("otlp.{key}: empty OTel resource attribute"));
                }
                if out.iter().any(|o| o == item) {
                    return Err(format!(
                        "otlp.{key}: duplicated OTel resource attribute {item:?}"
                    ));
                }
                out.push(item.to_string());
            }
            Ok(out)
        };
        Ok(quiver_ingest::otlp::Options {
            translation_strategy: strategy,
            promote_resource_attributes: list(
                "promote_resource_attributes",
                &self.promote_resource_attributes,
            )?,
            promote_all_resource_attributes: self.promote_all_resource_attributes,
            ignore_resource_attributes: list(
                "ignore_resource_attributes",
                &self.ignore_resource_attributes,
            )?,
            keep_identifying_resource_attributes: self.keep_identifying_resource_attributes,
            promote_scope_metadata: self.promote_scope_metadata,
            label_name_underscore_sanitization: self.label_name_underscore_sanitization,
            label_name_preserve_multiple_underscores: self.label_name_preserve_multiple_underscores,
            lookback_ms,
        })
    }
}
