//! The configuration file, typed: Prometheus's `prometheus.yml` schema (the parts Quiver acts
//! on), read strictly. An unknown field or a wrong type is an error naming the file, the line and
//! the field (serde reports the path and position); checks across fields name the job and the
//! line of its `job_name`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use quiver_storage::legacy_label_name;

use crate::relabel::RelabelConfig;

/// A Prometheus duration (`15s`, `1m30s`, `2h`), as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match crate::time::parse_prometheus_duration(&s) {
            Some(ms) if ms >= 0 => Ok(PromDuration(Duration::from_millis(ms as u64))),
            _ => Err(serde::de::Error::custom(format!(
                "not a valid duration string: {s:?}"
            ))),
        }
    }
}

impl fmt::Display for PromDuration {
    /// Prometheus's canonical spelling: `15s`, `1m`, `1h30m`, `500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return write!(f, "0s");
        }
        for (unit, size) in crate::time::DURATION_UNITS {
            let size = size as u64;
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Where alerts go: Alertmanagers and alert relabeling.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// SQL recording rules (Quiver's own section): named queries whose answers become tables
    /// of schema `rules`.
    #[serde(default)]
    pub sql_rules: Vec<SqlRuleConfig>,
    /// Where to send what Quiver stores (Prometheus's remote write).
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Sections Prometheus has and Quiver does not act on yet: accepted, logged
    /// ([`ConfigFile::not_acted_on`]), ignored.
    #[serde(default)]
    pub remote_read: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub storage: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub tracing: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub runtime: Option<serde_yaml_ng::Value>,
    /// How OTLP metrics become series (Prometheus's section).
    #[serde(default)]
    pub otlp: OtlpConfig,
    #[serde(default)]
    pub scrape_config_files: Vec<String>,
}

pub use super::remote::{
    MAX_REMOTE_WRITES, OtlpConfig, QueueConfig, REMOTE_WRITE_V1, REMOTE_WRITE_V2, RemoteWriteConfig,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: PromDuration,
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default = "default_interval")]
    pub evaluation_interval: PromDuration,
    #[serde(default)]
    pub rule_query_offset: Option<PromDuration>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub query_log_file: Option<String>,
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<bool>,
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    #[serde(default)]
    pub body_size_limit: Option<String>,
    #[serde(default)]
    pub sample_limit: Option<u64>,
    #[serde(default)]
    pub label_limit: Option<u64>,
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    #[serde(default)]
    pub target_limit: Option<u64>,
    #[serde(default)]
    pub keep_dropped_targets: Option<u64>,
}

/// Prometheus's default evaluation interval: 1 m.
fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

/// The scrape interval when the file sets none: 15 s (what Prometheus's shipped configuration
/// sets; its built-in default is 1 m).
fn default_scrape_interval() -> PromDuration {
    PromDuration(Duration::from_secs(15))
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: None,
            evaluation_interval: default_interval(),
            rule_query_offset: None,
            external_labels: BTreeMap::new(),
            query_log_file: None,
            scrape_protocols: None,
            scrape_native_histograms: None,
            always_scrape_classic_histograms: None,
            convert_classic_histograms_to_nhcb: None,
            body_size_limit: None,
            sample_limit: None,
            label_limit: None,
            label_name_length_limit: None,
            label_value_length_limit: None,
            target_limit: None,
            keep_dropped_targets: None,
        }
    }
}

impl GlobalConfig {
    /// The global scrape timeout: as set, else 10 s, capped at the interval.
    pub fn effective_scrape_timeout(&self) -> PromDuration {
        self.scrape_timeout.unwrap_or(PromDuration(
            Duration::from_secs(10).min(self.scrape_interval.0),
        ))
    }
}

/// One `scrape_configs` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default)]
    pub fallback_scrape_protocol: Option<String>,
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<bool>,
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    #[serde(default = "yes")]
    pub enable_compression: bool,
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
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub body_size_limit: Option<String>,
    #[serde(default)]
    pub sample_limit: Option<u64>,
    #[serde(default)]
    pub label_limit: Option<u64>,
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    #[serde(default)]
    pub target_limit: Option<u64>,
    #[serde(default)]
    pub keep_dropped_targets: Option<u64>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> Scheme {
    Scheme::Http
}
pub(super) fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn bearer() -> String {
    "Bearer".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub min_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    #[serde(default = "default_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_refresh() -> PromDuration {
    PromDuration(Duration::from_secs(300))
}

/// `alerting`: the Alertmanagers alerts are sent to, and how alerts are relabeled first.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alerting.alertmanagers` entry: how to find and reach a set of Alertmanagers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(default = "default_am_timeout")]
    pub timeout: PromDuration,
    /// Only `v2` (Alertmanager 0.16 and later; v1 is gone since 0.27).
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
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

fn default_am_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

/// One `sql_rules` entry: a SQL query run every `interval`, its rows kept in `rules.<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRuleConfig {
    pub name: String,
    pub query: String,
    /// Default: `global.evaluation_interval`.
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// `replace` (the table is the latest answer) or `append` (answers accumulate).
    #[serde(default)]
    pub mode: SqlRuleMode,
    /// With `append`, the most rows kept (the oldest go first).
    #[serde(default = "default_sql_rule_rows")]
    pub max_rows: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlRuleMode {
    #[default]
    Replace,
    Append,
}

fn default_sql_rule_rows() -> usize {
    1_000_000
}

/// A scrape config with the global defaults applied and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeJob {
    pub cfg: ScrapeConfig,
    pub interval: Duration,
    pub timeout: Duration,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub body_size_limit: u64,
    /// What the scrape does with histograms (`scrape_native_histograms` and the two next to
    /// it, each the job's, else the global's, else false).
    pub histograms: quiver_ingest::exposition_proto::HistogramOptions,
    /// The scrape's `Accept` header, from `scrape_protocols` (see [`accept_header`]).
    pub accept: String,
}

/// Parses a Prometheus byte size (`10MB`, `1GiB`, `512`): 0 means no limit.
pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let mult: u64 = match s[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl ConfigFile {
    /// The sections Prometheus has that are set here and that Quiver does not act on yet
    /// (logged as a warning whenever the file is loaded).
    pub fn not_acted_on(&self) -> Vec<&'static str> {
        [
            ("remote_read", self.remote_read.is_some()),
            ("storage", self.storage.is_some()),
            ("tracing", self.tracing.is_some()),
            ("runtime", self.runtime.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Reads the YAML strictly and checks it; errors name `file`, the line and the field.
    pub fn parse(file: &str, yaml: &str) -> Result<Self, super::ConfigError> {
        let cfg: ConfigFile = parse_strict(file, yaml)?;
        cfg.validate(file, yaml)?;
        Ok(cfg)
    }

    fn validate(&self, file: &str, yaml: &str) -> Result<(), super::ConfigError> {
        let g = &self.global;
        let err_at = |needle: &str, message: String| error_at(file, yaml, needle, message);
        if let Some(t) = g.scrape_timeout
            && t.0 > g.scrape_interval.0
        {
            return Err(err_at(
                "global.scrape_timeout",
                format!(
                    "global.scrape_timeout: {t} is greater than scrape_interval {}",
                    g.scrape_interval
                ),
            ));
        }
        for name in g.external_labels.keys() {
            if !legacy_label_name(name) {
                return Err(err_at(
                    "global.external_labels",
                    format!("global.external_labels: {name:?} is not a valid label name"),
                ));
            }
        }
        for (i, am) in self.alerting.alertmanagers.iter().enumerate() {
            let field = |f: &str| format!("alerting.alertmanagers[{i}].{f}");
            if let Some(v) = &am.api_version
                && !v.eq_ignore_ascii_case("v2")
            {
                return Err(err_at(
                    &field("api_version"),
                    format!(
                        "{}: {v:?} is not supported (Quiver speaks Alertmanager's API v2)",
                        field("api_version")
                    ),
                ));
            }
            for (k, r) in am.relabel_configs.iter().enumerate() {
                r.validate().map_err(|m| {
                    let f = field(&format!("relabel_configs[{k}]"));
                    err_at(&f, format!("{f}: {m}"))
                })?;
            }
        }
        for (k, r) in self.alerting.alert_relabel_configs.iter().enumerate() {
            r.validate().map_err(|m| {
                let f = format!("alerting.alert_relabel_configs[{k}]");
                err_at(&f, format!("{f}: {m}"))
            })?;
        }
        if self.remote_write.len() > MAX_REMOTE_WRITES {
            return Err(err_at(
                "remote_write",
                format!("remote_write: more than {MAX_REMOTE_WRITES} entries"),
            ));
        }
        let mut remote_names = std::collections::HashSet::new();
        let mut remote_entries = std::collections::HashSet::new();
        for (i, rw) in self.remote_write.iter().enumerate() {
            if !remote_entries.insert(format!("{rw:?}")) {
                let f = format!("remote_write[{i}]");
                return Err(err_at(
                    &f,
                    format!("{f}: duplicate remote write configs are not allowed"),
                ));
            }
            if let Err((field, m)) = rw.validate() {
                let f = format!("remote_write[{i}].{field}");
                return Err(err_at(&f, format!("{f}: {m}")));
            }
            if let Some(name) = &rw.name
                && !remote_names.insert(name.clone())
            {
                let f = format!("remote_write[{i}].name");
                return Err(err_at(
                    &f,
                    format!("{f}: found multiple remote write configs with the name {name:?}"),
                ));
            }
        }
        if let Err(m) = self.otlp.options(0) {
            let field = m.split(':').next().unwrap_or("otlp").to_string();
            return Err(err_at(&field, m));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.sql_rules.iter().enumerate() {
            let f = format!("sql_rules[{i}]");
            if !legacy_label_name(&r.name) {
                return Err(err_at(
                    &format!("{f}.name"),
                    format!(
                        "{f}.name: {:?} is not a valid table name ([a-zA-Z_][a-zA-Z0-9_]*)",
                        r.name
                    ),
                ));
            }
            if !names.insert(r.name.as_str()) {
                return Err(err_at(
                    &format!("{f}.name"),
                    format!("{f}.name: {:?} is given twice", r.name),
                ));
            }
            if r.interval.is_some_and(|d| d.0.is_zero()) {
                return Err(err_at(
                    &format!("{f}.interval"),
                    format!("{f}.interval: must be positive"),
                ));
            }
            if let Err(e) = quiver_sql::guard::check_query_text(&r.query) {
                return Err(err_at(&format!("{f}.query"), format!("{f}.query: {e}")));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            let at = format!("job_name: {}", sc.job_name);
            let field = |f: &str| format!("scrape_configs[{i}] (job {:?}).{f}", sc.job_name);
            if sc.job_name.is_empty() {
                return Err(err_at(
                    "job_name",
                    format!("{}: must not be empty", field("job_name")),
                ));
            }
            if !seen.insert(sc.job_name.clone()) {
                return Err(err_at(
                    &at,
                    format!(
                        "{}: found multiple scrape configs with this job name",
                        field("job_name")
                    ),
                ));
            }
            self.job(sc).map_err(|(f, m)| {
                let e = err_at(
                    &format!("scrape_configs[{i}].{f}"),
                    format!("{}: {m}", field(f)),
                );
                if e.location.is_some() {
                    e
                } else {
                    err_at(&at, format!("{}: {m}", field(f)))
                }
            })?;
            for (list, name) in [
                (&sc.relabel_configs, "relabel_configs"),
                (&sc.metric_relabel_configs, "metric_relabel_configs"),
            ] {
                for (k, r) in list.iter().enumerate() {
                    r.validate().map_err(|m| {
                        err_at(
                            &format!("scrape_configs[{i}].{name}[{k}]"),
                            format!("{}: {m}", field(&format!("{name}[{k}]"))),
                        )
                    })?;
                }
            }
            for (k, st) in sc.static_configs.iter().enumerate() {
                for t in &st.targets {
                    if t.contains('/') {
                        return Err(err_at(
                            t,
                            format!(
                                "{}: {t:?} is not a valid target address (host:port, no scheme or path)",
                                field(&format!("static_configs[{k}].targets"))
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The scrape config with global defaults applied: `Err((field, message))` when it is
    /// inconsistent.
    pub fn job(&self, sc: &ScrapeConfig) -> Result<ScrapeJob, (&'static str, String)> {
        let g = &self.global;
        let interval = sc.scrape_interval.unwrap_or(g.scrape_interval);
        if interval.0.is_zero() {
            return Err(("scrape_interval", "must be positive".into()));
        }
        let timeout = match sc.scrape_timeout {
            Some(t) => t,
            None => {
                let t = g.effective_scrape_timeout();
                if t.0 > interval.0 { interval } else { t }
            }
        };
        if timeout.0 > interval.0 {
            return Err((
                "scrape_timeout",
                format!("{timeout} is greater than scrape_interval {interval}"),
            ));
        }
        if timeout.0.is_zero() {
            return Err(("scrape_timeout", "must be positive".into()));
        }
        if !sc.metrics_path.starts_with('/') {
            return Err((
                "metrics_path",
                format!("{:?} must start with '/'", sc.metrics_path),
            ));
        }
        let auths = [
            sc.basic_auth.is_some(),
            sc.authorization.is_some(),
            sc.bearer_token.is_some() || sc.bearer_token_file.is_some(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            return Err((
                "authorization",
                "at most one of basic_auth, authorization and bearer_token may be set".into(),
            ));
        }
        if let Some(b) = &sc.basic_auth
            && b.password.is_some()
            && b.password_file.is_some()
        {
            return Err((
                "basic_auth",
                "at most one of password and password_file may be set".into(),
            ));
        }
        if let Some(a) = &sc.authorization {
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err((
                    "authorization",
                    "at most one of credentials and credentials_file may be set".into(),
                ));
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err((
                    "authorization.type",
                    "the Basic type is not allowed here: use basic_auth".into(),
                ));
            }
        }
        if let Some(tls) = &sc.tls_config
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err((
                "tls_config",
                "cert_file and key_file must be set together".into(),
            ));
        }
        if sc.proxy_url.is_some() {
            return Err(("proxy_url", "is not supported by Quiver yet".into()));
        }
        for name in sc.params.keys() {
            if name.is_empty() {
                return Err(("params", "a parameter name must not be empty".into()));
            }
        }
        if let Some(p) = &sc.fallback_scrape_protocol
            && !KNOWN_PROTOCOLS.contains(&p.as_str())
        {
            return Err((
                "fallback_scrape_protocol",
                format!("unknown protocol {p:?}"),
            ));
        }
        for p in sc
            .scrape_protocols
            .iter()
            .chain(g.scrape_protocols.iter())
            .flatten()
        {
            if !KNOWN_PROTOCOLS.contains(&p.as_str()) {
                return Err(("scrape_protocols", format!("unknown protocol {p:?}")));
            }
        }
        for list in [&sc.scrape_protocols, &g.scrape_protocols]
            .into_iter()
            .flatten()
        {
            for (i, p) in list.iter().enumerate() {
                if list[..i].contains(p) {
                    return Err((
                        "scrape_protocols",
                        format!("duplicated protocol in scrape_protocols, got {list:?}"),
                    ));
                }
            }
        }
        let body_size_limit = match sc.body_size_limit.as_ref().or(g.body_size_limit.as_ref()) {
            None => 0,
            Some(s) => parse_byte_size(s).ok_or((
                "body_size_limit",
                format!("{s:?} is not a byte size (like 10MB)"),
            ))?,
        };
        let flag = |job: Option<bool>, global: Option<bool>| job.or(global).unwrap_or(false);
        let histograms = quiver_ingest::exposition_proto::HistogramOptions {
            native: flag(sc.scrape_native_histograms, g.scrape_native_histograms),
            always_classic: flag(
                sc.always_scrape_classic_histograms,
                g.always_scrape_classic_histograms,
            ),
            convert_to_nhcb: flag(
                sc.convert_classic_histograms_to_nhcb,
                g.convert_classic_histograms_to_nhcb,
            ),
        };
        let protocols: Vec<&str> =
            match sc.scrape_protocols.as_ref().or(g.scrape_protocols.as_ref()) {
                Some(p) => p.iter().map(String::as_str).collect(),
                None if histograms.native => DEFAULT_NATIVE_PROTOCOLS.to_vec(),
                None => DEFAULT_PROTOCOLS.to_vec(),
            };
        if protocols.is_empty() {
            return Err(("scrape_protocols", "must not be empty".into()));
        }
        Ok(ScrapeJob {
            accept: accept_header(&protocols),
            histograms,
            cfg: sc.clone(),
            interval: interval.0,
            timeout: timeout.0,
            sample_limit: sc.sample_limit.or(g.sample_limit).unwrap_or(0),
            label_limit: sc.label_limit.or(g.label_limit).unwrap_or(0),
            label_name_length_limit: sc
                .label_name_length_limit
                .or(g.label_name_length_limit)
                .unwrap_or(0),
            label_value_length_limit: sc
                .label_value_length_limit
                .or(g.label_value_length_limit)
                .unwrap_or(0),
            target_limit: sc.target_limit.or(g.target_limit).unwrap_or(0),
            body_size_limit,
        })
    }

    /// Every job, defaults applied (the file was validated, so none fails).
    pub fn jobs(&self) -> Vec<ScrapeJob> {
        self.scrape_configs
            .iter()
            .filter_map(|sc| self.job(sc).ok())
            .collect()
    }
}

/// `scrape_protocols` when neither the job nor the global section sets it: Prometheus 3's
/// defaults, protobuf first when native histograms are scraped.
const DEFAULT_PROTOCOLS: [&str; 4] = [
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];
const DEFAULT_NATIVE_PROTOCOLS: [&str; 5] = [
    "PrometheusProto",
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];

/// The `Accept` header of a list of protocols, as Prometheus 3 builds it (`acceptHeader`):
/// each protocol's media type (the 1.0.0 text formats allowing UTF-8 names) with a falling
/// weight from 0.6, then `*/*` lowest.
pub fn accept_header(protocols: &[&str]) -> String {
    let mut out = Vec::new();
    let mut weight = KNOWN_PROTOCOLS.len() + 1;
    for p in protocols {
        let media = match *p {
            "PrometheusProto" => quiver_ingest::exposition_proto::MEDIA_TYPE,
            "OpenMetricsText1.0.0" => {
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            }
            "OpenMetricsText0.0.1" => "application/openmetrics-text;version=0.0.1",
            "PrometheusText1.0.0" => "text/plain;version=1.0.0;escaping=allow-utf-8",
            _ => "text/plain;version=0.0.4",
        };
        out.push(format!("{media};q=0.{weight}"));
        weight = weight.saturating_sub(1);
    }
    out.push(format!("*/*;q=0.{weight}"));
    out.join(",")
}

/// Protocol names of `scrape_protocols` (Prometheus 3).
pub const KNOWN_PROTOCOLS: [&str; 5] = [
    "PrometheusProto",
    "OpenMetricsText0.0.1",
    "OpenMetricsText1.0.0",
    "PrometheusText0.0.4",
    "PrometheusText1.0.0",
];

/// Reads a YAML file strictly into `T` (an empty file is `T::default()`): an unknown field or a
/// wrong type is an error naming `file`, the line and the field path. The main configuration
/// and the web configuration (`--web.config.file`) both read through it.
pub fn parse_strict<T: DeserializeOwned + Default>(
    file: &str,
    yaml: &str,
) -> Result<T, super::ConfigError> {
    if yaml.trim().is_empty() {
        return Ok(T::default());
    }
    let de = serde_yaml_ng::Deserializer::from_str(yaml);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut message = strip_location(&inner.to_string());
        // serde_yaml names part of the path itself: keep one copy, ours.
        if let Some((prefix, rest)) = message.split_once(": ")
            && !prefix.contains(' ')
            && path.starts_with(prefix)
        {
            message = rest.to_string();
        }
        let at_path = locate(yaml, &path);
        super::ConfigError {
            file: file.to_string(),
            location: at_path
                .map(|l| (l, 1))
                .or(inner.location().map(|l| (l.line(), l.column()))),
            message: if path == "." || path.is_empty() {
                message
            } else {
                format!("{path}: {message}")
            },
        }
    })
}

/// An error found after parsing (a check across fields, a file that cannot be used), placed at
/// the line of the field path `needle`, or else of the first line holding it.
pub fn error_at(file: &str, yaml: &str, needle: &str, message: String) -> super::ConfigError {
    super::ConfigError {
        file: file.to_string(),
        location: locate(yaml, needle)
            .or_else(|| line_of(yaml, needle))
            .map(|l| (l, 1)),
        message,
    }
}

/// serde_yaml's messages end in "at line L column C"; the location is reported separately.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The 1-based line of a field path (`scrape_configs[1].scrape_timeout`) in block-style YAML,
/// found by indentation; `None` when the layout is not block style (flow mappings and the like).
pub fn locate(yaml: &str, path: &str) -> Option<usize> {
    enum Seg<'a> {
        Key(&'a str),
        Index(usize),
    }
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                segs.push(Seg::Key(&rest[..i]));
            }
            rest = &rest[i..];
            while let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']')?;
                segs.push(Seg::Index(r[..end].parse().ok()?));
                rest = &r[end + 1..];
            }
        } else {
            segs.push(Seg::Key(rest));
        }
    }
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let blank = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
    // The column of key `k` on a line, after any `- ` item markers.
    let key_col = |l: &str, k: &str| -> Option<usize> {
        let mut col = indent(l);
        let mut rest = &l[col..];
        while let Some(r) = rest.strip_prefix("- ") {
            let skipped = r.len() - r.trim_start_matches(' ').len();
            col += 2 + skipped;
            rest = &r[skipped..];
        }
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let after = rest.strip_prefix(k)?;
        let after = after.strip_prefix('"').unwrap_or(after);
        after
            .trim_start_matches(' ')
            .starts_with(':')
            .then_some(col)
    };
    // Lines after `i` that belong to a block opened at column `col`.
    let block_end = |i: usize, col: usize, is_key: bool| -> usize {
        let mut j = i + 1;
        while j < lines.len() {
            let l = lines[j];
            if !blank(l) {
                let ind = indent(l);
                let item = l.trim_start().starts_with('-');
                if ind < col || (ind == col && !(is_key && item)) {
                    break;
                }
            }
            j += 1;
        }
        j
    };
    let (mut lo, mut hi) = (0, lines.len());
    let mut found = None;
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                let mut best: Option<(usize, usize)> = None;
                for (i, l) in lines.iter().enumerate().take(hi).skip(lo) {
                    if let Some(c) = key_col(l, k)
                        && best.is_none_or(|(_, bc)| c < bc)
                    {
                        best = Some((i, c));
                    }
                }
                let (i, c) = best?;
                found = Some(i);
                lo = i;
                hi = block_end(i, c, true);
            }
            Seg::Index(n) => {
                let items: Vec<(usize, usize)> = (lo..hi)
                    .filter(|i| {
                        let t = lines[*i].trim_start();
                        t.starts_with("- ") || t == "-"
                    })
                    .map(|i| (i, indent(lines[i])))
                    .collect();
                let min = items.iter().map(|(_, c)| *c).min()?;
                let (i, c) = *items.iter().filter(|(_, c)| *c == min).nth(n)?;
                found = Some(i);
                lo = i;
                hi = block_end(i, c, false);
            }
        }
    }
    found.map(|i| i + 1)
}

/// The 1-based line where `needle` first appears.
fn line_of(yaml: &str, needle: &str) -> Option<usize> {
    yaml.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ConfigFile, super::super::ConfigError> {
        ConfigFile::parse("prometheus.yml", yaml)
    }

    #[test]
    fn defaults_follow_prometheus_with_a_15s_interval() {
        let c =
            parse("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n")
                .unwrap();
        let job = &c.jobs()[0];
        assert_eq!(job.interval, Duration::from_secs(15));
        assert_eq!(job.timeout, Duration::from_secs(10));
        assert_eq!(job.cfg.metrics_path, "/metrics");
        assert_eq!(job.cfg.scheme, Scheme::Http);
        assert!(job.cfg.honor_timestamps && !job.cfg.honor_labels);
    }

    #[test]
    fn timeout_defaults_to_a_shorter_interval() {
        let c = parse("global: {scrape_interval: 5s}\nscrape_configs: [{job_name: a}]\n").unwrap();
        assert_eq!(c.jobs()[0].timeout, Duration::from_secs(5));
    }

    #[test]
    fn timeout_over_interval_is_an_error_naming_the_job_line() {
        let err = parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: slow\n    scrape_timeout: 20s\n",
        )
        .unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(5), "{err}");
        assert!(
            err.message
                .contains("scrape_configs[0] (job \"slow\").scrape_timeout"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_names_line_and_path() {
        let err =
            parse("scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n").unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(3), "{err}");
        assert!(err.message.contains("scrape_intervall"), "{err}");
        assert!(err.message.starts_with("scrape_configs[0]"), "{err}");
    }

    #[test]
    fn bad_duration_names_its_field() {
        let err = parse("global:\n  scrape_interval: 15 seconds\n").unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(2), "{err}");
        assert!(err.message.contains("global.scrape_interval"), "{err}");
    }

    #[test]
    fn field_paths_resolve_to_lines() {
        let yaml = "global:\n  scrape_interval: 15s\nscrape_configs:\n- job_name: a\n  static_configs:\n  - targets: [x]\n- job_name: b\n  # comment\n  relabel_configs:\n    - source_labels: [a]\n      action: hashmod\n";
        assert_eq!(locate(yaml, "global.scrape_interval"), Some(2));
        assert_eq!(locate(yaml, "scrape_configs[1]"), Some(7));
        assert_eq!(
            locate(yaml, "scrape_configs[1].relabel_configs[0].action"),
            Some(11)
        );
        assert_eq!(
            locate(yaml, "scrape_configs[0].static_configs[0].targets"),
            Some(6)
        );
        let err = parse(yaml).unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(10), "{err}");
        assert!(
            err.message.contains("relabel_configs[0]") && err.message.contains("hashmod"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_job_names_are_rejected() {
        let err = parse("scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n")
            .unwrap_err();
        assert!(err.message.contains("multiple scrape configs"), "{err}");
    }

    #[test]
    fn durations_print_canonically() {
        assert_eq!(PromDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(
            PromDuration(Duration::from_millis(1500)).to_string(),
            "1s500ms"
        );
        assert_eq!(PromDuration(Duration::from_secs(15)).to_string(), "15s");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("10MB"), Some(10 << 20));
        assert_eq!(parse_byte_size("512"), Some(512));
        assert_eq!(parse_byte_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_byte_size("ten"), None);
    }
}
