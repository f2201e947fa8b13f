//! Loads rule files (globs, relative to the configuration file), runs each group on its own
//! schedule, and replaces the groups on a reload: a group of the same file and name takes over
//! its predecessor's alerts and series; a group that went away marks its series stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::alerting::AlertingRule;
use super::file::{self, GroupSpec, RuleKind};
use super::group::{EvalContext, Group, Rule, RuleBody};
use super::recording::RecordingRule;
use crate::config::{Config, EMBEDDED};

/// The rule groups a configuration names, read and checked.
pub struct Loaded {
    groups: Vec<(String, GroupSpec)>,
}

impl Loaded {
    /// How many rules the files hold.
    pub fn rules(&self) -> usize {
        self.groups.iter().map(|(_, g)| g.rules.len()).sum()
    }
}

/// Reads every rule file `config.rule_files` names (globs; relative paths from the
/// configuration file's folder). Any error fails the whole load, naming the file and line.
pub fn load(config: &Config) -> Result<Loaded, String> {
    let base = if config.source == EMBEDDED {
        PathBuf::from(".")
    } else {
        Path::new(&config.source)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let mut groups = Vec::new();
    for pattern in &config.file.rule_files {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| format!("rule_files: {pattern:?} is not a valid pattern: {e}"))?;
        let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        files.sort();
        for path in files {
            let name = path.display().to_string();
            let yaml =
                std::fs::read_to_string(&path).map_err(|e| format!("{name}: cannot read: {e}"))?;
            let spec = file::parse(&name, &yaml).map_err(|e| e.to_string())?;
            groups.extend(spec.groups.into_iter().map(|g| (name.clone(), g)));
        }
    }
    Ok(Loaded { groups })
}

/// Builds the groups of loaded files with the configuration's defaults.
pub fn build(loaded: &Loaded, config: &Config) -> Vec<Group> {
    let g = &config.file.global;
    let default_offset = g.rule_query_offset.map(|d| d.0).unwrap_or_default();
    loaded
        .groups
        .iter()
        .map(|(file, spec)| {
            let rules = spec
                .rules
                .iter()
                .map(|r| {
                    let expr =
                        quiver_promql::parse(&r.expr).expect("checked when the file was read");
                    // The group's labels, under the rule's.
                    let mut labels: BTreeMap<String, String> = spec.labels.clone();
                    labels.extend(r.labels.clone());
                    let body = match r.kind() {
                        RuleKind::Recording => RuleBody::Recording(RecordingRule {
                            name: r.name().to_string(),
                            expr,
                            labels,
                        }),
                        RuleKind::Alerting => RuleBody::Alerting(AlertingRule::new(
                            r.name().to_string(),
                            expr,
                            r.hold(),
                            r.keep_firing_for(),
                            labels,
                            r.annotations.clone(),
                            false,
                        )),
                    };
                    Rule::new(body)
                })
                .collect();
            Group::new(
                spec.name.clone(),
                file.clone(),
                spec.interval
                    .map(|d| d.0)
                    .unwrap_or(g.evaluation_interval.0),
                spec.limit,
                spec.query_offset.map(|d| d.0).unwrap_or(default_offset),
                rules,
            )
        })
        .collect()
}

/// A group and the task that runs it.
struct Running {
    group: Arc<Group>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running rule groups.
pub struct RuleManager {
    running: tokio::sync::Mutex<Vec<Running>>,
    view: RwLock<Vec<Arc<Group>>>,
}

impl RuleManager {
    pub fn new() -> Arc<Self> {
        Arc::new(RuleManager {
            running: tokio::sync::Mutex::new(Vec::new()),
            view: RwLock::new(Vec::new()),
        })
    }

    /// The groups, in file and then file order.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.view.read().clone()
    }

    /// Replaces the running groups with `groups`, each taking over the state of the group of
    /// the same file and name; groups that are gone mark their series stale.
    pub async fn apply(&self, groups: Vec<Group>, ctx: Arc<EvalContext>) {
        let mut running = self.running.lock().await;
        // Stop the old tasks (an evaluation under way finishes first), then move their state.
        let mut old = Vec::with_capacity(running.len());
        for r in running.iter() {
            let _ = r.stop.send(true);
        }
        for r in running.drain(..) {
            let _ = r.task.await;
            old.push(r.group);
        }
        let mut taken = vec![false; old.len()];
        let mut next = Vec::with_capacity(groups.len());
        for g in groups {
            let predecessor = old
                .iter()
                .position(|o| o.file == g.file && o.name == g.name);
            if let Some(i) = predecessor {
                taken[i] = true;
                g.adopt(&old[i]);
            }
            let group = Arc::new(g);
            let (stop, stopped) = watch::channel(false);
            // `for` state is restored once per rule, after its first evaluation since a start.
            let restore = group
                .rules
                .iter()
                .any(|r| matches!(&r.body, RuleBody::Alerting(a) if !a.is_restored()));
            let task = tokio::spawn(run_group(group.clone(), ctx.clone(), stopped, restore));
            next.push(Running { group, stop, task });
        }
        for (g, taken) in old.iter().zip(taken) {
            if !taken {
                g.mark_stale(quiver_storage::maintenance::now_ms(), &ctx.db)
                    .await;
            }
        }
        *self.view.write() = next.iter().map(|r| r.group.clone()).collect();
        *running = next;
    }

    /// Stops every group (their series are left as they are: a restart picks them up).
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for r in running.iter() {
            let _ = r.stop.send(true);
        }
        for r in running.drain(..) {
            let _ = r.task.await;
        }
    }
}

/// One group's schedule: at each slot of its grid; an evaluation that overruns skips the
/// slots it missed (counted). After a start, the first evaluation is followed by restoring
/// `for` state, as Prometheus does.
async fn run_group(
    group: Arc<Group>,
    ctx: Arc<EvalContext>,
    mut stop: watch::Receiver<bool>,
    restore: bool,
) {
    let interval = (group.interval.as_millis() as i64).max(1);
    let mut next = group.next_slot(quiver_storage::maintenance::now_ms());
    let mut restore = restore;
    loop {
        let wait = next - quiver_storage::maintenance::now_ms();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        group.evaluate(next, &ctx).await;
        if restore {
            group.restore_for_state(next, &ctx).await;
            restore = false;
        }
        let now = quiver_storage::maintenance::now_ms();
        let missed = ((now - next) / interval - 1).max(0);
        if missed > 0 {
            group
                .metrics
                .missed
                .fetch_add(missed as u64, std::sync::atomic::Ordering::Relaxed);
        }
        next += (missed + 1) * interval;
    }
}
