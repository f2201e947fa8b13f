//! Targets from discovered groups, as Prometheus's `PopulateLabels` builds them: discovered
//! labels plus the job's defaults, `relabel_configs`, then `instance` from `__address__` and
//! the `__` labels left out of the stored label set.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use crate::config::file::{PromDuration, ScrapeJob};

use crate::discovery::TargetGroup;
use crate::relabel::{self, LabelMap};

/// A target after relabeling.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The labels its series get: no `__` labels, `instance` set.
    pub labels: LabelMap,
    /// The labels as discovered, before relabeling (shown by `/api/v1/targets`).
    pub discovered: LabelMap,
    /// The URL to scrape.
    pub url: String,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
}

impl Target {
    /// Identity within a pool: the same labels and URL are the same target.
    pub fn key(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.labels.hash(&mut h);
        self.url.hash(&mut h);
        h.finish()
    }
}

/// What became of a discovered target.
#[derive(Debug, Clone, PartialEq)]
pub enum Populated {
    Active(Target),
    /// Dropped by relabeling: its discovered labels.
    Dropped(LabelMap),
}

/// Builds every target of `groups` for `job`: errors (a target without an address, a bad
/// interval label) skip that target and are returned for the log.
pub fn targets_from_groups(
    job: &ScrapeJob,
    groups: &[TargetGroup],
) -> (Vec<Populated>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for g in groups {
        for t in &g.targets {
            let mut lset = g.labels.clone();
            for (n, v) in t {
                lset.insert(n.clone(), v.clone());
            }
            match populate(job, lset) {
                Ok(p) => out.push(p),
                Err(e) => errors.push(format!("{}: {e}", g.source)),
            }
        }
    }
    (out, errors)
}

/// One target: defaults, relabeling, checks.
pub fn populate(job: &ScrapeJob, mut lset: LabelMap) -> Result<Populated, String> {
    let cfg = &job.cfg;
    let defaults = [
        ("job", cfg.job_name.clone()),
        (
            "__scrape_interval__",
            PromDuration(job.interval).to_string(),
        ),
        ("__scrape_timeout__", PromDuration(job.timeout).to_string()),
        ("__metrics_path__", cfg.metrics_path.clone()),
        ("__scheme__", cfg.scheme.as_str().to_string()),
    ];
    for (n, v) in defaults {
        lset.entry(n.to_string()).or_insert(v);
    }
    for (name, values) in &cfg.params {
        if let Some(v) = values.first() {
            lset.entry(format!("__param_{name}"))
                .or_insert_with(|| v.clone());
        }
    }
    lset.retain(|_, v| !v.is_empty());
    let discovered = lset.clone();
    if !relabel::process(&mut lset, &cfg.relabel_configs) {
        return Ok(Populated::Dropped(discovered));
    }
    let Some(address) = lset.get("__address__").cloned() else {
        return Err("no address".into());
    };
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let interval = parse_label_duration(&lset, "__scrape_interval__", job.interval)?;
    let timeout = parse_label_duration(&lset, "__scrape_timeout__", job.timeout)?;
    if timeout > interval {
        return Err(format!(
            "scrape timeout {} greater than scrape interval {}",
            PromDuration(timeout),
            PromDuration(interval)
        ));
    }
    let scheme = lset
        .get("__scheme__")
        .cloned()
        .unwrap_or_else(|| "http".into());
    let path = lset.get("__metrics_path__").cloned().unwrap_or_default();
    // Query parameters: the job's, with `__param_<name>` replacing the first value.
    let mut params: BTreeMap<String, Vec<String>> = cfg.params.clone();
    for (n, v) in &lset {
        if let Some(p) = n.strip_prefix("__param_") {
            let vals = params.entry(p.to_string()).or_default();
            if vals.is_empty() {
                vals.push(v.clone());
            } else {
                vals[0] = v.clone();
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (n, vals) in &params {
        for v in vals {
            url.push(sep);
            url.push_str(&encode(n));
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        }
    }
    url::Url::parse(&url).map_err(|e| format!("invalid scrape URL {url:?}: {e}"))?;
    let mut labels: LabelMap = lset
        .into_iter()
        .filter(|(n, _)| !n.starts_with("__"))
        .collect();
    labels.entry("instance".into()).or_insert(address);
    Ok(Populated::Active(Target {
        labels,
        discovered,
        url,
        interval,
        timeout,
    }))
}

fn parse_label_duration(
    lset: &LabelMap,
    name: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, String> {
    match lset.get(name) {
        None => Ok(default),
        Some(v) => match crate::time::parse_prometheus_duration(v) {
            Some(ms) if ms > 0 => Ok(std::time::Duration::from_millis(ms as u64)),
            _ => Err(format!("error parsing {name} label {v:?}")),
        },
    }
}

/// Percent-encoding for query parameters.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::ConfigFile;

    fn job(yaml: &str) -> ScrapeJob {
        ConfigFile::parse("t.yml", yaml).unwrap().jobs().remove(0)
    }

    fn target(addr: &str, extra: &[(&str, &str)]) -> LabelMap {
        let mut m = LabelMap::new();
        m.insert("__address__".into(), addr.into());
        for (n, v) in extra {
            m.insert(n.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn defaults_instance_and_internal_labels() {
        let j = job(
            "scrape_configs: [{job_name: node, scrape_interval: 5s, params: {module: [a, b]}}]",
        );
        let Populated::Active(t) =
            populate(&j, target("h:9100", &[("__meta_x", "1"), ("env", "prod")])).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            t.labels.into_iter().collect::<Vec<_>>(),
            vec![
                ("env".to_string(), "prod".to_string()),
                ("instance".into(), "h:9100".into()),
                ("job".into(), "node".into())
            ]
        );
        assert_eq!(t.url, "http://h:9100/metrics?module=a&module=b");
        assert_eq!(t.discovered["__scrape_interval__"], "5s");
        assert_eq!(t.discovered["__param_module"], "a");
        assert_eq!(t.discovered["__meta_x"], "1");
    }

    #[test]
    fn relabeling_rewrites_address_scheme_path_and_params() {
        let j = job(
            "scrape_configs:\n- job_name: blackbox\n  relabel_configs:\n  - {source_labels: [__address__], target_label: __param_target}\n  - {source_labels: [__param_target], target_label: instance}\n  - {target_label: __address__, replacement: 'exporter:9115'}\n  - {target_label: __metrics_path__, replacement: /probe}\n  - {target_label: __scheme__, replacement: https}\n",
        );
        let Populated::Active(t) = populate(&j, target("example.com", &[])).unwrap() else {
            panic!()
        };
        assert_eq!(t.url, "https://exporter:9115/probe?target=example.com");
        assert_eq!(t.labels["instance"], "example.com");
    }

    #[test]
    fn static_instance_label_wins_and_drops_are_reported() {
        let j = job(
            "scrape_configs:\n- job_name: a\n  relabel_configs: [{source_labels: [env], regex: dev, action: drop}]\n",
        );
        let Populated::Active(t) = populate(&j, target("h:1", &[("instance", "mine")])).unwrap()
        else {
            panic!()
        };
        assert_eq!(t.labels["instance"], "mine");
        assert!(matches!(
            populate(&j, target("h:1", &[("env", "dev")])).unwrap(),
            Populated::Dropped(_)
        ));
    }

    #[test]
    fn interval_label_overrides_and_bad_targets_error() {
        let j = job("scrape_configs: [{job_name: a, scrape_interval: 30s}]");
        let Populated::Active(t) =
            populate(&j, target("h:1", &[("__scrape_interval__", "1m")])).unwrap()
        else {
            panic!()
        };
        assert_eq!(t.interval.as_secs(), 60);
        assert!(populate(&j, target("h:1", &[("__scrape_interval__", "soon")])).is_err());
        assert!(populate(&j, target("h:1/x", &[])).is_err());
        assert!(
            populate(&j, LabelMap::new())
                .unwrap_err()
                .contains("no address")
        );
    }
}
