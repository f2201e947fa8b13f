//! Service discovery, shared by scraping and the Alertmanager notifier: `static_configs` and
//! `file_sd_configs`. File SD reads JSON or YAML lists of
//! `{targets, labels}` from files matched by the patterns (a `*` may appear in the file name),
//! adds `__meta_filepath`, and re-reads them when they change (their size or modification time)
//! and on every `refresh_interval`. A file that fails to parse keeps its previous targets.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::config::file::{FileSdConfig, StaticConfig};

use crate::relabel::LabelMap;

/// A group of targets from one source (a static config, or one file of file SD).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetGroup {
    /// Where it came from (for logs): `static/0`, or the file name and index.
    pub source: String,
    /// One label set per target (`__address__` and any per-target labels).
    pub targets: Vec<LabelMap>,
    /// Labels every target of the group gets.
    pub labels: LabelMap,
}

/// How often file SD looks at its files' sizes and modification times.
pub const FILE_POLL: Duration = Duration::from_secs(2);

/// The groups of a job's static configs.
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            source: format!("static/{i}"),
            targets: sc
                .targets
                .iter()
                .map(|t| LabelMap::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: sc.labels.clone().into_iter().collect(),
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A file's signature (modified time, size) when read, and the groups it gave.
type FileState = (Option<(SystemTime, u64)>, Vec<TargetGroup>);

/// File SD state for one job: what each file last gave.
#[derive(Debug, Default)]
pub struct FileSd {
    configs: Vec<FileSdConfig>,
    /// Per file: its signature when read, and its groups.
    files: BTreeMap<PathBuf, FileState>,
    last_refresh: HashMap<usize, Instant>,
}

impl FileSd {
    pub fn new(configs: Vec<FileSdConfig>) -> Self {
        FileSd {
            configs,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Re-reads what changed: `Some(groups)` when the targets changed, with errors to log.
    pub fn poll(&mut self, force: bool) -> (Option<Vec<TargetGroup>>, Vec<String>) {
        let mut errors = Vec::new();
        let mut changed = false;
        let mut present = std::collections::BTreeSet::new();
        let now = Instant::now();
        for (ci, cfg) in self.configs.iter().enumerate() {
            let refresh_due = self
                .last_refresh
                .get(&ci)
                .is_none_or(|t| now.duration_since(*t) >= cfg.refresh_interval.0);
            if refresh_due {
                self.last_refresh.insert(ci, now);
            }
            for pattern in &cfg.files {
                for path in expand(pattern, &mut errors) {
                    present.insert(path.clone());
                    let sig = std::fs::metadata(&path)
                        .ok()
                        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
                    let known = self.files.get(&path);
                    if !force && !refresh_due && known.is_some_and(|(s, _)| *s == sig) {
                        continue;
                    }
                    match read_file(&path) {
                        Ok(groups) => {
                            if known.is_none_or(|(_, g)| *g != groups) {
                                changed = true;
                            }
                            self.files.insert(path, (sig, groups));
                        }
                        Err(e) => {
                            errors.push(format!("file SD {}: {e}", path.display()));
                            // Keep what the file gave before; remember the signature so the
                            // error is logged once per change.
                            let old = self.files.remove(&path).map(|(_, g)| g).unwrap_or_default();
                            self.files.insert(path, (sig, old));
                        }
                    }
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|p, _| present.contains(p));
        changed |= self.files.len() != before;
        let groups = changed.then(|| self.current());
        (groups, errors)
    }

    /// The groups every file gave when last read.
    pub fn current(&self) -> Vec<TargetGroup> {
        self.files.values().flat_map(|(_, g)| g.clone()).collect()
    }
}

/// The files a pattern names: a `*` or `?` is allowed in the last path element.
fn expand(pattern: &str, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?']) {
        return if path.exists() {
            vec![path.to_path_buf()]
        } else {
            vec![]
        };
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let re = format!(
        "^{}$",
        regex::escape(name).replace("\\*", ".*").replace("\\?", ".")
    );
    let Ok(re) = regex::Regex::new(&re) else {
        errors.push(format!("file SD: bad pattern {pattern:?}"));
        return vec![];
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| re.is_match(n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn read_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let groups: Vec<FileGroup> = match ext {
        "json" => serde_json::from_str(&text).map_err(|e| format!("line {}: {e}", e.line()))?,
        "yml" | "yaml" => serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?,
        _ => return Err("the file name must end in .json, .yml or .yaml".into()),
    };
    let shown = path.display().to_string();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut labels: LabelMap = g.labels.into_iter().collect();
            labels.insert("__meta_filepath".into(), shown.clone());
            TargetGroup {
                source: format!("{shown}:{i}"),
                targets: g
                    .targets
                    .into_iter()
                    .map(|t| LabelMap::from([("__address__".to_string(), t)]))
                    .collect(),
                labels,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::PromDuration;

    #[test]
    fn file_sd_reads_json_and_yaml_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.yml");
        std::fs::write(
            &a,
            r#"[{"targets": ["h1:80", "h2:80"], "labels": {"env": "prod"}}]"#,
        )
        .unwrap();
        std::fs::write(&b, "- targets: ['h3:80']\n").unwrap();
        let mut sd = FileSd::new(vec![FileSdConfig {
            files: vec![
                format!("{}/*.json", dir.path().display()),
                b.display().to_string(),
            ],
            refresh_interval: PromDuration(Duration::from_secs(300)),
        }]);
        let (groups, errors) = sd.poll(false);
        assert!(errors.is_empty(), "{errors:?}");
        let groups = groups.unwrap();
        let addrs: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.targets.iter().map(|t| t["__address__"].as_str()))
            .collect();
        assert_eq!(addrs, ["h1:80", "h2:80", "h3:80"]);
        assert_eq!(groups[0].labels["env"], "prod");
        assert_eq!(groups[0].labels["__meta_filepath"], a.display().to_string());
        // Nothing changed: no update.
        assert!(sd.poll(false).0.is_none());
        // A broken file keeps its old targets and reports the error.
        std::fs::write(&a, "[{").unwrap();
        let (groups, errors) = sd.poll(true);
        assert!(groups.is_none() && errors.len() == 1, "{errors:?}");
        // A fixed file is picked up; a removed one takes its targets away.
        std::fs::write(&a, r#"[{"targets": ["h9:80"]}]"#).unwrap();
        std::fs::remove_file(&b).unwrap();
        let groups = sd.poll(true).0.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].targets[0]["__address__"], "h9:80");
    }
}
