//! Arrow Flight and Flight SQL, through arrow-flight's own clients: JSON tickets for plain
//! Flight, Flight SQL statements, metadata and prepared statements, and the bearer token.

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use arrow_flight::{FlightClient, FlightInfo, Ticket};
use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use futures::TryStreamExt;
use tonic::transport::Channel;

use super::support::{TestServer, client, post};

async fn server_with_gpus(flags: &[&str]) -> TestServer {
    let mut all = vec!["--storage.retention.time=100y"];
    all.extend_from_slice(flags);
    let s = TestServer::start(&all).await;
    let mut text = String::new();
    for gpu in 0..3 {
        for t in 0..4 {
            text.push_str(&format!(
                "gpu_util{{gpu=\"{gpu}\"}} {} {}\n",
                t * 10 + gpu,
                1_700_000_000_000i64 + t * 15_000
            ));
        }
    }
    let (code, body) = post(&s.url("/api/v1/import/prometheus"), text.into_bytes(), &[]).await;
    assert_eq!(code, 204, "{body}");
    s
}

async fn channel(s: &TestServer) -> Channel {
    super::support::flight_channel(s).await
}

/// The error of a call that must fail.
fn refused<T>(r: Result<T, arrow_flight::error::FlightError>) -> arrow_flight::error::FlightError {
    match r {
        Ok(_) => panic!("the call should have failed"),
        Err(e) => e,
    }
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).unwrap().as_string::<i32>().clone();
            (0..c.len()).map(move |i| c.value(i).to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_tickets_answer_sql_and_promql() {
    let s = server_with_gpus(&[]).await;
    let mut c = FlightClient::new(channel(&s).await);
    // SQL: the samples table's dictionary `metric` column arrives as plain strings.
    let batches = json_ticket(
        &mut c,
        r#"{"sql": "SELECT metric, series_id, value FROM samples ORDER BY value"}"#,
    )
    .await;
    assert_eq!(rows(&batches), 12);
    assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Utf8);
    assert!(strings(&batches, "metric").iter().all(|m| m == "gpu_util"));

    // PromQL over a range: one row per series and step, labels as columns.
    let batches = json_ticket(
        &mut c,
        r#"{"promql": "gpu_util * 2", "start": 1700000000, "end": 1700000045, "step": "15s"}"#,
    )
    .await;
    assert_eq!(rows(&batches), 12);
    let mut gpus = strings(&batches, "gpu");
    gpus.dedup();
    assert_eq!(gpus, ["0", "1", "2"]);
    let total: f64 = batches
        .iter()
        .map(|b| {
            b.column_by_name("value")
                .unwrap()
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .sum::<f64>()
        })
        .sum();
    // 2 * (sum over gpus and steps of 10t + gpu) = 2 * (3 * 60 + 4 * 3)
    assert_eq!(total, 2.0 * (3.0 * 60.0 + 4.0 * 3.0));

    // An instant PromQL ticket.
    let batches = json_ticket(
        &mut c,
        r#"{"promql": "sum(gpu_util)", "time": "2023-11-14T22:13:50Z"}"#,
    )
    .await;
    assert_eq!(rows(&batches), 1);

    // Bad tickets get a clear error.
    let err = refused(
        c.do_get(Ticket::new(r#"{"promql": "sum(", "time": 0}"#))
            .await,
    );
    assert!(
        err.to_string().contains("unclosed left parenthesis"),
        "{err}"
    );
    let err = refused(c.do_get(Ticket::new(r#"{"query": "SELECT 1"}"#)).await);
    assert!(err.to_string().contains("a JSON ticket is"), "{err}");
    s.stop().await;
}

/// The batches a plain-Flight JSON ticket answers.
async fn json_ticket(c: &mut FlightClient, ticket: &'static str) -> Vec<RecordBatch> {
    c.do_get(Ticket::new(ticket))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

async fn fetch(c: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for e in info.endpoint {
        let stream = c.do_get(e.ticket.unwrap()).await.unwrap();
        out.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_statements_metadata_and_prepared_statements() {
    let s = server_with_gpus(&[]).await;
    let mut c = FlightSqlServiceClient::new(channel(&s).await);

    let info = c
        .execute(
            "SELECT gpu, sum(value) AS total FROM metrics.gpu_util GROUP BY gpu ORDER BY gpu"
                .into(),
            None,
        )
        .await
        .unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(schema.field(1).name(), "total");
    let batches = fetch(&mut c, info).await;
    assert_eq!(strings(&batches, "gpu"), ["0", "1", "2"]);

    // Another client (a fresh connection) answers the same ticket: tickets are stateless.
    let info = c.execute("SELECT 41 + 1 AS x".into(), None).await.unwrap();
    let mut other = FlightSqlServiceClient::new(channel(&s).await);
    let batches = fetch(&mut other, info).await;
    assert_eq!(
        batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        42
    );

    // Metadata.
    let batches = {
        let info = c.get_catalogs().await.unwrap();
        fetch(&mut c, info).await
    };
    assert_eq!(strings(&batches, "catalog_name"), ["datafusion"]);
    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas = strings(&fetch(&mut c, info).await, "db_schema_name");
    for want in ["experiments", "metrics", "public", "system"] {
        assert!(schemas.iter().any(|s| s == want), "{want} in {schemas:?}");
    }
    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("metrics".into()),
            table_name_filter_pattern: Some("gpu%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await;
    assert_eq!(strings(&batches, "table_name"), ["gpu_util"]);
    // The table's schema, as IPC bytes: gpu, series_id, timestamp, value.
    let ipc = batches[0]
        .column_by_name("table_schema")
        .unwrap()
        .as_binary::<i32>()
        .value(0)
        .to_vec();
    let table_schema = datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer(&ipc).unwrap();
    let names: Vec<&String> = table_schema.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["gpu", "series_id", "timestamp", "value"]);
    let info = c
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut c, info).await), 1);
    let info = c.get_table_types().await.unwrap();
    assert_eq!(
        strings(&fetch(&mut c, info).await, "table_type"),
        ["TABLE", "VIEW"]
    );

    // A prepared statement, run with two different parameters, then closed.
    let mut p = c
        .prepare(
            "SELECT max(value) AS top FROM metrics.gpu_util WHERE gpu = $1".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(p.dataset_schema().unwrap().field(0).name(), "top");
    for (gpu, want) in [("1", 31.0), ("2", 32.0)] {
        let params = RecordBatch::try_from_iter([(
            "$1",
            std::sync::Arc::new(StringArray::from(vec![gpu])) as _,
        )])
        .unwrap();
        p.set_parameters(params).unwrap();
        let info = p.execute().await.unwrap();
        let batches = fetch(&mut c, info).await;
        let top = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(0);
        assert_eq!(top, want, "gpu {gpu}");
    }
    p.close().await.unwrap();

    // A bad statement is an error, not a hang.
    let err = c
        .execute("SELECT nope FROM nowhere".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_flight_and_the_sql_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let flag = format!("--flight.token-file={}", token_file.display());
    let s = server_with_gpus(&[flag.as_str()]).await;

    let ticket = Ticket::new(r#"{"sql": "SELECT 1"}"#);
    let mut anonymous = FlightClient::new(channel(&s).await);
    let err = refused(anonymous.do_get(ticket.clone()).await);
    assert!(err.to_string().contains("needs a bearer token"), "{err}");
    let mut wrong = FlightClient::new(channel(&s).await);
    wrong.add_header("authorization", "Bearer nope").unwrap();
    assert!(wrong.do_get(ticket.clone()).await.is_err());
    let mut good = FlightClient::new(channel(&s).await);
    good.add_header("authorization", "Bearer s3cret").unwrap();
    let batches: Vec<RecordBatch> = good
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows(&batches), 1);

    // Flight SQL's handshake: Basic auth with the token as password gives the bearer token.
    let mut sql = FlightSqlServiceClient::new(channel(&s).await);
    assert!(sql.handshake("anyone", "wrong").await.is_err());
    sql.handshake("anyone", "s3cret").await.unwrap();
    assert_eq!(sql.token().map(String::as_str), Some("s3cret"));
    let info = sql.execute("SELECT 1".into(), None).await.unwrap();
    assert_eq!(rows(&fetch(&mut sql, info).await), 1);

    // The HTTP SQL endpoint takes the same token.
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["errorType"], "unauthorized");
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", "SELECT 1")])
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
