//! Pull-based collection, as Prometheus scrapes: targets from `static_configs` and
//! `file_sd_configs`, relabeled ([`crate::relabel`]) into [`target::Target`]s; one loop per target
//! ([`scraper`]) fetches `/metrics`, parses the text format or OpenMetrics
//! ([`quiver_ingest::exposition`]), labels the samples and appends each scrape as one batch;
//! [`manager`] keeps the pools in step with the configuration across reloads.

pub mod manager;
pub mod scraper;
pub mod table;
pub mod target;

pub use manager::ScrapeManager;
