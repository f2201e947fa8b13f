//! What a client's SQL may do, and how long and how much memory it may take.
//!
//! Quiver's SQL is read-only on every entry point (HTTP, Flight SQL, Flight's JSON tickets, SQL
//! recording rules): one shared session answers everyone, so a statement that changes it (`SET`,
//! `CREATE`, `DROP`) would change it for all, and `COPY … TO` or `CREATE EXTERNAL TABLE` would
//! read or write the server's files. Two checks, so that one mistake does not open the door:
//! the parsed statement must be a query ([`check_statement`], which names what it refused), and
//! the logical plan must hold no DDL, DML or statement node (DataFusion's [`SQLOptions`], which
//! also catches `SELECT … INTO`, a table creation inside a query).
//!
//! Every query also runs against a deadline ([`DeadlineStream`]: `--query.timeout`) and draws on
//! one memory pool with the PromQL engine (`--query.max-memory`; [`SqlLimits::runtime`]), and
//! operators never spill to disk: a query over the bound fails, the server goes on. Functions
//! that build one huge value in a single call are bounded apart ([`crate::bounded`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use futures::Stream;

/// The bounds every SQL query runs under.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    /// Longest a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// Most memory the operators of all queries in flight may hold together, in bytes
    /// (`--query.max-memory`).
    pub max_memory: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            timeout: Duration::from_secs(120),
            max_memory: 4 << 30,
        }
    }
}

impl SqlLimits {
    /// The runtime every query runs in: a pool of `max_memory` bytes (the five largest consumers
    /// named when it is exhausted) and no spill files (a spilling query could fill the disk the
    /// WAL needs; it fails instead).
    pub fn runtime(&self) -> Result<Arc<RuntimeEnv>> {
        RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(TrackConsumersPool::new(
                GreedyMemoryPool::new(self.max_memory),
                std::num::NonZeroUsize::new(5).expect("five is not zero"),
            )))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
    }
}

/// The plan check: no DDL, DML (`COPY` counts as DML) or statements (`SET`, `PREPARE`).
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Refuses every statement but a query: `SELECT`, `WITH`, `VALUES`, `EXPLAIN` of a query,
/// `SHOW` and `DESCRIBE`.
pub fn check_statement(statement: &DfStatement) -> Result<()> {
    let refused = match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_)
            | Statement::ExplainTable { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. } => return Ok(()),
            Statement::Explain { statement, .. } => {
                return check_statement(&DfStatement::Statement(statement.clone()));
            }
            other => first_words(&other.to_string()),
        },
        DfStatement::Explain(e) => return check_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".to_string(),
        DfStatement::CopyTo(_) => "COPY".to_string(),
        DfStatement::Reset(_) => "RESET".to_string(),
    };
    Err(not_allowed(&refused))
}

/// Deepest nesting of parentheses accepted in SQL text. sqlparser tries more than one reading
/// of a parenthesis in a `FROM` clause and backtracks: nested groups like
/// `SELECT from (((( SELECT from (((( …` cost time exponential in their depth (a fuzzed
/// statement of 187 bytes took 0.6 s to parse; each four more levels cost about four times
/// more). DataFusion refuses more than 50 levels of recursion anyway; at 24 the worst shape
/// measured takes 30 ms (debug build), at 32 it took 0.4 s.
pub const MAX_PAREN_DEPTH: usize = 24;

/// Refuses SQL text whose parentheses nest past [`MAX_PAREN_DEPTH`] (outside string literals,
/// quoted identifiers and comments), before it is parsed.
pub fn check_text_bounds(sql: &str) -> Result<()> {
    let b = sql.as_bytes();
    let (mut i, mut depth) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => {
                depth += 1;
                if depth > MAX_PAREN_DEPTH {
                    return Err(DataFusionError::Plan(format!(
                        "the statement nests parentheses more than {MAX_PAREN_DEPTH} levels deep"
                    )));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Parses `sql` and checks that it is one query (a SQL rule's statement, checked when the
/// configuration is read).
pub fn check_query_text(sql: &str) -> Result<()> {
    check_text_bounds(sql)?;
    let mut statements = datafusion::sql::parser::DFParser::parse_sql(sql)?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => check_statement(&statement),
        (None, _) => Err(DataFusionError::Plan("no SQL statement".into())),
        (Some(_), false) => Err(DataFusionError::Plan("one SQL statement only".into())),
    }
}

/// The error for a statement that is not a query.
pub fn not_allowed(what: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{what} is not allowed: Quiver's SQL is read-only (SELECT, WITH, VALUES, EXPLAIN, SHOW \
         and DESCRIBE only)"
    ))
}

/// The statement's leading keywords (`CREATE TABLE`, `INSERT`, `SET`), for the message.
fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .take(2)
        .collect();
    let keyword = |w: &&str| w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let kept: Vec<&str> = words.iter().copied().take_while(|w| keyword(w)).collect();
    if kept.is_empty() {
        "this statement".to_string()
    } else {
        kept.join(" ")
    }
}

/// A query that ran past `--query.timeout`. Wrapped in `DataFusionError::External`; the entry
/// points find it with [`is_timeout`] and answer Prometheus's `timeout` (503).
#[derive(Debug)]
pub struct QueryTimeout(pub Duration);

impl std::fmt::Display for QueryTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query timed out in {:?} (--query.timeout)", self.0)
    }
}

impl std::error::Error for QueryTimeout {}

/// Whether `e` (or an error it wraps) is a [`QueryTimeout`].
pub fn is_timeout(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<QueryTimeout>().is_some(),
        DataFusionError::Context(_, inner) => is_timeout(inner),
        DataFusionError::Shared(inner) => is_timeout(inner),
        _ => false,
    }
}

/// Whether `e` (or an error it wraps) is a memory bound that was reached.
pub fn is_resources_exhausted(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => true,
        DataFusionError::Context(_, inner) => is_resources_exhausted(inner),
        _ => false,
    }
}

/// A stream that ends with a [`QueryTimeout`] once its deadline passes; dropping it (which the
/// error leads every consumer to do) cancels the plan under it.
pub struct DeadlineStream {
    inner: SendableRecordBatchStream,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: bool,
}

impl DeadlineStream {
    /// `inner`, ended at `deadline`; `timeout` is what the error reports.
    pub fn new(
        inner: SendableRecordBatchStream,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Self {
        DeadlineStream {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            timeout,
            expired: false,
        }
    }
}

impl Stream for DeadlineStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let e = DataFusionError::External(Box::new(QueryTimeout(self.timeout)));
            return Poll::Ready(Some(Err(e)));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Result<()> {
        check_query_text(sql)
    }

    #[test]
    fn parentheses_nested_past_the_bound_are_refused_before_parsing() {
        let nested = |d: usize| format!("SELECT {}1{}", "(".repeat(d), ")".repeat(d));
        assert!(check_text_bounds(&nested(MAX_PAREN_DEPTH)).is_ok());
        let err = check_text_bounds(&nested(MAX_PAREN_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("parentheses"), "{err}");
        // Parentheses in strings, quoted names and comments do not count.
        let deep = "(".repeat(100);
        for q in [
            format!("SELECT '{deep}'"),
            format!("SELECT \"{deep}\" FROM t"),
            format!("SELECT 1 -- {deep}\n"),
            format!("SELECT /* {deep} */ 1"),
        ] {
            assert!(check_text_bounds(&q).is_ok(), "{q}");
        }
        // The shape that backtracks exponentially is refused at once.
        let groups = format!("SELECT from {} SELECT 1", "(((( SELECT from ".repeat(10));
        assert!(check_query_text(&groups).is_err());
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM samples",
            "SHOW ALL",
            "DESCRIBE samples",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn everything_but_queries_is_refused_with_its_name() {
        for (sql, named) in [
            ("COPY (SELECT 1) TO '/tmp/x.csv' STORED AS CSV", "COPY"),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("DROP TABLE samples", "DROP TABLE"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("INSERT INTO samples VALUES (1)", "INSERT INTO"),
            ("DELETE FROM samples", "DELETE FROM"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("EXPLAIN ANALYZE DROP TABLE samples", "DROP TABLE"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
        ] {
            let e = check(sql).expect_err(sql).to_string();
            assert!(
                e.contains(&format!("{named} is not allowed")) && e.contains("read-only"),
                "{sql}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn a_deadline_ends_the_stream_with_a_timeout() {
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        use futures::StreamExt;
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let pending = RecordBatchStreamAdapter::new(schema, futures::stream::pending());
        let timeout = Duration::from_millis(20);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut s = DeadlineStream::new(Box::pin(pending), deadline, timeout);
        let e = s.next().await.expect("an item").expect_err("a timeout");
        assert!(is_timeout(&e), "{e}");
        assert!(s.next().await.is_none());
    }
}
