//! Per-query limits, shared by every operator of a plan through the session config.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};

/// Prometheus's message when a query would hold more than `--query.max-samples`.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// The limits of one query and what it has used so far.
#[derive(Debug)]
pub struct QueryGuard {
    /// Most samples the query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// When the query must have finished (`--query.timeout`).
    pub deadline: Option<Instant>,
    samples: AtomicUsize,
}

impl Default for QueryGuard {
    fn default() -> Self {
        QueryGuard::new(usize::MAX, None)
    }
}

impl QueryGuard {
    pub fn new(max_samples: usize, deadline: Option<Instant>) -> Self {
        QueryGuard {
            max_samples,
            deadline,
            samples: AtomicUsize::new(0),
        }
    }

    /// Counts `n` samples loaded; fails once the query holds more than it may.
    pub fn add_samples(&self, n: usize) -> Result<()> {
        let total = self.samples.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_samples {
            return Err(Error::Limit(TOO_MANY_SAMPLES.into()));
        }
        Ok(())
    }

    pub fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some(d) if Instant::now() > d => Err(Error::Timeout("query execution")),
            _ => Ok(()),
        }
    }
}
