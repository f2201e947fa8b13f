//! Runs PromQL test files. Our own files must pass in full; for Prometheus's upstream files
//! (when `../shared/promql-testdata/` exists) each file's pass count is printed and checked
//! against the floor recorded in `tests/promql/upstream-floor.txt`, so a regression fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{runner, testfile};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    files
}

async fn run_file(path: &Path) -> Result<runner::Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let commands = testfile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(runner::run(&commands).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_promql_test_files_pass() {
    let files = test_files(&workspace().join("tests/promql"));
    assert!(!files.is_empty(), "no .test files in tests/promql");
    let mut failures = Vec::new();
    for f in &files {
        let r = run_file(f).await.unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{}: {}/{} passed", f.display(), r.passed, r.total());
        for x in r.failed {
            failures.push(format!("{}: {x}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_promql_test_files_do_not_regress() {
    let dir = workspace().join("../shared/promql-testdata");
    let files = test_files(&dir);
    if files.is_empty() {
        eprintln!("{} not found: upstream PromQL files not run", dir.display());
        return;
    }
    let floor: BTreeMap<String, usize> =
        std::fs::read_to_string(workspace().join("tests/promql/upstream-floor.txt"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (f, n) = l.split_once(char::is_whitespace)?;
                Some((f.to_string(), n.trim().parse().ok()?))
            })
            .collect();
    let verbose = std::env::var_os("PROMQL_VERBOSE").is_some();
    let mut regressions = Vec::new();
    eprintln!("{:<28} {:>6} {:>6}", "file", "passed", "total");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let r = match run_file(f).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{name:<28} not run: {e}");
                if floor.contains_key(&name) {
                    regressions.push(format!("{name}: not run: {e}"));
                }
                continue;
            }
        };
        eprintln!("{name:<28} {:>6} {:>6}", r.passed, r.total());
        if verbose {
            for x in &r.failed {
                eprintln!("    FAIL {name} {x}");
            }
        }
        if let Some(min) = floor.get(&name)
            && r.passed < *min
        {
            regressions.push(format!("{name}: {} passed, floor {min}", r.passed));
        }
    }
    assert!(regressions.is_empty(), "{}", regressions.join("\n"));
}
