//! Pull-based collection, as Prometheus scrapes: targets from `static_configs` and
//! `file_sd_configs`, relabeled ([`relabel`]) into [`target::Target`]s; one loop per target
//! ([`scraper`]) fetches `/metrics`, parses the text format or OpenMetrics
//! ([`crate::ingest::exposition`]), labels the samples and appends each scrape as one batch;
//! [`manager`] keeps the pools in step with the configuration across reloads.

pub mod discovery;
pub mod manager;
pub mod relabel;
pub mod scraper;
pub mod table;
pub mod target;

pub use manager::ScrapeManager;

/// A label name as relabeling accepts it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    crate::config::file::valid_label_name(name)
}
