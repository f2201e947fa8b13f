//! Arrow Flight and Flight SQL (`--flight.listen-address`, default `0.0.0.0:50051`).
//!
//! - **Flight SQL** for ADBC and JDBC-style clients: `CommandStatementQuery`, `GetSqlInfo`,
//!   `GetCatalogs`, `GetDbSchemas`, `GetTables` (with schemas), `GetTableTypes`, and prepared
//!   statements (create, query with or without `$1` parameters, close).
//! - **Plain Flight** `DoGet` with a JSON ticket, for `pyarrow.flight` without a Flight SQL
//!   client: `{"sql": "…"}`, or `{"promql": "…", "start": …, "end": …, "step": …}` (a range query)
//!   or `{"promql": "…", "time": …}` (an instant query), times and steps as `promql()` takes them.
//!
//! Every ticket and prepared-statement handle carries its whole query (and bound parameters), so
//! any Quiver with the same storage answers any `DoGet`: nothing is kept between calls. Results
//! stream as DataFusion produces them, dictionary columns sent as plain values so that every
//! client reads them. With `--flight.token-file`, every call needs `authorization: Bearer
//! <token>` (or Basic auth with the token as password, which the handshake answers with the
//! bearer header).

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, IpcMessage, PollInfo, SchemaAsIpc, SchemaResult, Ticket,
};
use base64::Engine as _;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::prelude::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::api::AppState;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Serves Flight on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let token = state.token().map(str::to_string);
    let server = FlightServiceServer::new(FlightFront {
        sql: QuiverFlightSql { state },
    })
    .max_decoding_message_size(64 << 20);
    let service =
        tonic::service::interceptor::InterceptedService::new(server, move |req: Request<()>| {
            check_token(token.as_deref(), &req).map(|_| req)
        });
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        // Long queries: keep idle connections and NATs alive while the first batch is computed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Checks the `authorization` header against the token (none configured: everything passes).
#[allow(clippy::result_large_err)]
fn check_token<T>(token: Option<&str>, req: &Request<T>) -> Result<(), Status> {
    let Some(token) = token else { return Ok(()) };
    let header = req
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Status::unauthenticated("this Quiver needs a bearer token"))?;
    if crate::api::token_matches(header, token) {
        Ok(())
    } else {
        Err(Status::unauthenticated("the token is not valid"))
    }
}

/// Flight SQL's service with the JSON tickets of plain Flight in front of it.
struct FlightFront {
    sql: QuiverFlightSql,
}

#[tonic::async_trait]
impl FlightService for FlightFront {
    type HandshakeStream = <QuiverFlightSql as FlightService>::HandshakeStream;
    type ListFlightsStream = <QuiverFlightSql as FlightService>::ListFlightsStream;
    type DoGetStream = DoGetStream;
    type DoPutStream = <QuiverFlightSql as FlightService>::DoPutStream;
    type DoActionStream = <QuiverFlightSql as FlightService>::DoActionStream;
    type ListActionsStream = <QuiverFlightSql as FlightService>::ListActionsStream;
    type DoExchangeStream = <QuiverFlightSql as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&self.sql, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(&self.sql, request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(&self.sql, request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(&self.sql, request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        FlightService::get_schema(&self.sql, request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = &request.get_ref().ticket;
        if ticket.trim_ascii_start().first() == Some(&b'{') {
            let sql = json_ticket_sql(ticket)?;
            return Ok(Response::new(self.sql.stream(&sql, None).await?));
        }
        FlightService::do_get(&self.sql, request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(&self.sql, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(&self.sql, request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&self.sql, request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(&self.sql, request).await
    }
}

/// The SQL statement a JSON ticket stands for.
#[allow(clippy::result_large_err)]
fn json_ticket_sql(ticket: &[u8]) -> Result<String, Status> {
    let v: serde_json::Value = serde_json::from_slice(ticket)
        .map_err(|e| Status::invalid_argument(format!("the ticket is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Status::invalid_argument("a JSON ticket is an object"))?;
    if let Some(sql) = obj.get("sql") {
        if let Some(other) = obj.keys().find(|k| *k != "sql") {
            return Err(Status::invalid_argument(format!(
                "unknown ticket field {other:?} (a SQL ticket is {{\"sql\": \"…\"}})"
            )));
        }
        return sql
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Status::invalid_argument("\"sql\" must be a string"));
    }
    let Some(expr) = obj.get("promql") else {
        return Err(Status::invalid_argument(
            "a JSON ticket is {\"sql\": \"…\"} or {\"promql\": \"…\", \"start\": …, \"end\": …, \"step\": …}",
        ));
    };
    let expr = expr
        .as_str()
        .ok_or_else(|| Status::invalid_argument("\"promql\" must be a string"))?;
    let arg = |name: &str| -> Result<Option<String>, Status> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_json::Value::String(s)) => Ok(Some(sql_literal(s))),
            Some(_) => Err(Status::invalid_argument(format!(
                "\"{name}\" must be a number (unix seconds) or a string (RFC 3339, or a duration for \"step\")"
            ))),
        }
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "promql" | "start" | "end" | "step" | "time"))
    {
        return Err(Status::invalid_argument(format!(
            "unknown ticket field {other:?} (a PromQL ticket has promql, start, end, step, or time)"
        )));
    }
    let expr = sql_literal(expr);
    match (arg("start")?, arg("end")?, arg("step")?, arg("time")?) {
        (Some(start), Some(end), Some(step), None) => Ok(format!(
            "SELECT * FROM promql({expr}, {start}, {end}, {step})"
        )),
        (None, None, None, Some(time)) => Ok(format!("SELECT * FROM promql({expr}, {time})")),
        (None, None, None, None) => {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            Ok(format!("SELECT * FROM promql({expr}, {now})"))
        }
        _ => Err(Status::invalid_argument(
            "a PromQL ticket has start, end and step (a range query), or time (an instant query)",
        )),
    }
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The schema clients see: dictionaries sent as their values (the encoder hydrates them).
fn flight_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => f.as_ref().clone().with_data_type(*value.clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn plan_error(e: DataFusionError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn execution_error(e: DataFusionError) -> Status {
    match e {
        DataFusionError::ResourcesExhausted(m) => Status::resource_exhausted(m),
        e => Status::internal(e.to_string()),
    }
}

/// A prepared statement's handle: its SQL and, once bound, its parameters (an Arrow IPC stream
/// of one row). `Q1`, the SQL's length (u32, little-endian), the SQL, the parameters.
struct Handle {
    sql: String,
    params: Option<Vec<u8>>,
}

impl Handle {
    fn encode(&self) -> Vec<u8> {
        let mut out = b"Q1".to_vec();
        out.extend_from_slice(&(self.sql.len() as u32).to_le_bytes());
        out.extend_from_slice(self.sql.as_bytes());
        if let Some(p) = &self.params {
            out.extend_from_slice(p);
        }
        out
    }

    #[allow(clippy::result_large_err)]
    fn decode(bytes: &[u8]) -> Result<Handle, Status> {
        let bad = || Status::invalid_argument("not a prepared statement handle of Quiver");
        let rest = bytes.strip_prefix(b"Q1").ok_or_else(bad)?;
        let len = u32::from_le_bytes(rest.get(..4).ok_or_else(bad)?.try_into().unwrap()) as usize;
        let sql = rest.get(4..4 + len).ok_or_else(bad)?;
        let sql = String::from_utf8(sql.to_vec()).map_err(|_| bad())?;
        let params = &rest[4 + len..];
        Ok(Handle {
            sql,
            params: (!params.is_empty()).then(|| params.to_vec()),
        })
    }

    /// The bound parameters as DataFusion's positional values.
    #[allow(clippy::result_large_err)]
    fn param_values(&self) -> Result<Option<ParamValues>, Status> {
        let Some(bytes) = &self.params else {
            return Ok(None);
        };
        let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(&bytes[..], None)
            .map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
        let mut values = Vec::new();
        for batch in reader {
            let batch =
                batch.map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
            if batch.num_rows() == 0 {
                continue;
            }
            for col in batch.columns() {
                values.push(
                    ScalarValue::try_from_array(col, 0)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                );
            }
            break;
        }
        Ok(Some(ParamValues::from(values)))
    }
}

static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Quiver");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow format version (Schema.fbs).
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().expect("static SQL info")
});

/// The Flight SQL service over the server's SQL session.
struct QuiverFlightSql {
    state: AppState,
}

impl QuiverFlightSql {
    #[allow(clippy::result_large_err)]
    fn session(&self) -> Result<Arc<quiver_sql::SqlSession>, Status> {
        self.state
            .sql()
            .cloned()
            .map_err(|e| Status::unavailable(e.message))
    }

    async fn plan(&self, sql: &str, params: Option<ParamValues>) -> Result<DataFrame, Status> {
        let mut df = self.session()?.sql(sql).await.map_err(plan_error)?;
        if let Some(p) = params {
            df = df.with_param_values(p).map_err(plan_error)?;
        }
        Ok(df)
    }

    /// Runs a statement and streams its batches as they come.
    async fn stream(&self, sql: &str, params: Option<ParamValues>) -> Result<DoGetStream, Status> {
        let df = self.plan(sql, params).await?;
        let batches = df.execute_stream().await.map_err(execution_error)?;
        let schema = batches.schema();
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches.map_err(|e| FlightError::ExternalError(Box::new(e))))
            .map_err(Status::from);
        Ok(Box::pin(data))
    }

    /// A FlightInfo whose one endpoint's ticket is `ticket`.
    #[allow(clippy::result_large_err)]
    fn info(
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(&flight_schema(schema))
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    fn batch_stream(schema: SchemaRef, batch: Result<RecordBatch, FlightError>) -> DoGetStream {
        Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(futures::stream::once(async { batch }))
                .map_err(Status::from),
        )
    }

    /// Every (catalog, schema) of the session.
    fn schemas(&self) -> Result<Vec<(String, String)>, Status> {
        let ctx = self.session()?.context().clone();
        let mut out = Vec::new();
        for c in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&c) {
                for s in catalog.schema_names() {
                    out.push((c.clone(), s));
                }
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl FlightSqlService for QuiverFlightSql {
    type FlightService = QuiverFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // The interceptor has checked the credentials; answer with the bearer header clients
        // use from now on.
        let out = futures::stream::once(async {
            Ok(HandshakeResponse {
                protocol_version: 0,
                payload: Default::default(),
            })
        });
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(out));
        if let Some(token) = self.state.token() {
            let v = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("the token is not a valid header value"))?;
            response.metadata_mut().insert("authorization", v);
        }
        drop(request);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let df = self.plan(&query.query, None).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Self::info(
            df.schema().as_arrow(),
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8"))?;
        Ok(Response::new(self.stream(sql, None).await?))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let df = self.plan(&handle.sql, handle.param_values()?).await?;
        Self::info(
            df.schema().as_arrow(),
            cmd.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        Ok(Response::new(
            self.stream(&handle.sql, handle.param_values()?).await?,
        ))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let df = self.plan(&query.query, None).await?;
        let options = IpcWriteOptions::default();
        let IpcMessage(dataset_schema) =
            SchemaAsIpc::new(&flight_schema(df.schema().as_arrow()), &options)
                .try_into()
                .map_err(|e: datafusion::arrow::error::ArrowError| {
                    Status::internal(e.to_string())
                })?;
        // `$1`, `$2`, … in order, typed where DataFusion can tell.
        let types = df
            .logical_plan()
            .get_parameter_types()
            .map_err(plan_error)?;
        let parameter_schema = if types.is_empty() {
            Default::default()
        } else {
            let mut names: Vec<&String> = types.keys().collect();
            names.sort_by_key(|n| n.trim_start_matches('$').parse::<usize>().unwrap_or(0));
            let fields: Vec<Field> = names
                .iter()
                .map(|n| {
                    Field::new(
                        n.as_str(),
                        types[*n].clone().unwrap_or(DataType::Null),
                        true,
                    )
                })
                .collect();
            let IpcMessage(bytes) = SchemaAsIpc::new(&Schema::new(fields), &options)
                .try_into()
                .map_err(|e: datafusion::arrow::error::ArrowError| {
                    Status::internal(e.to_string())
                })?;
            bytes
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Handle {
                sql: query.query,
                params: None,
            }
            .encode()
            .into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        let mut bound: Option<RecordBatch> = None;
        while let Some(b) = batches.next().await {
            let b = b.map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
            if b.num_rows() == 0 {
                continue;
            }
            if bound.is_some() || b.num_rows() > 1 {
                return Err(Status::invalid_argument(
                    "a query binds one row of parameters at a time",
                ));
            }
            bound = Some(b);
        }
        let params = match bound {
            None => None,
            Some(b) => {
                let mut bytes = Vec::new();
                let mut w = StreamWriter::try_new(&mut bytes, &b.schema())
                    .map_err(|e| Status::internal(e.to_string()))?;
                w.write(&b).map_err(|e| Status::internal(e.to_string()))?;
                w.finish().map_err(|e| Status::internal(e.to_string()))?;
                drop(w);
                Some(bytes)
            }
        };
        let handle = Handle {
            sql: handle.sql,
            params,
        };
        // Check the binding now, so a bad parameter fails here rather than at DoGet.
        self.plan(&handle.sql, handle.param_values()?).await?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode().into()),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles hold no server state.
        Ok(())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let b = query.into_builder(&SQL_INFO);
        let schema = b.schema();
        Ok(Response::new(Self::batch_stream(schema, b.build())))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut b = query.into_builder();
        for c in self.session()?.context().catalog_names() {
            b.append(c);
        }
        let schema = b.schema();
        Ok(Response::new(Self::batch_stream(schema, b.build())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut b = query.into_builder();
        for (c, s) in self.schemas()? {
            b.append(c, s);
        }
        let schema = b.schema();
        Ok(Response::new(Self::batch_stream(schema, b.build())))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let include_schema = query.include_schema;
        let ctx = self.session()?.context().clone();
        let mut b = query.into_builder();
        let empty = Schema::empty();
        for (c, s) in self.schemas()? {
            let Some(provider) = ctx.catalog(&c).and_then(|cat| cat.schema(&s)) else {
                continue;
            };
            for t in provider.table_names() {
                let table = if include_schema {
                    provider.table(&t).await.map_err(execution_error)?
                } else {
                    None
                };
                let kind = match table.as_ref().map(|t| t.table_type()) {
                    Some(datafusion::datasource::TableType::View) => "VIEW",
                    _ if s == "metrics" || s == "information_schema" => "VIEW",
                    _ => "TABLE",
                };
                let schema = table
                    .map(|t| flight_schema(&t.schema()))
                    .unwrap_or_else(|| empty.clone());
                b.append(&c, &s, &t, kind, &schema)
                    .map_err(|e| Status::internal(e.to_string()))?;
            }
        }
        let schema = b.schema();
        Ok(Response::new(Self::batch_stream(schema, b.build())))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::info(
            &table_types_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = Arc::new(table_types_schema());
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["TABLE", "VIEW"]))],
        )
        .map_err(FlightError::from);
        Ok(Response::new(Self::batch_stream(schema, batch)))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        None
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        Err(Status::unimplemented(format!(
            "Quiver does not answer {} tickets",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn table_types_schema() -> Schema {
    Schema::new(vec![Field::new("table_type", DataType::Utf8, false)])
}

/// The token in `Basic` auth: the password, any user.
pub fn basic_password(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        let h = Handle {
            sql: "SELECT $1".into(),
            params: Some(vec![1, 2, 3]),
        };
        let d = Handle::decode(&h.encode()).unwrap();
        assert_eq!(
            (d.sql.as_str(), d.params),
            ("SELECT $1", Some(vec![1, 2, 3]))
        );
        assert!(Handle::decode(b"SELECT 1").is_err());
    }

    #[test]
    fn json_tickets_become_sql() {
        assert_eq!(
            json_ticket_sql(br#"{"sql": "SELECT 1"}"#).unwrap(),
            "SELECT 1"
        );
        assert_eq!(
            json_ticket_sql(br#"{"promql": "rate(x[5m])", "start": 0, "end": "2026-01-01T00:00:00Z", "step": "15s"}"#)
                .unwrap(),
            "SELECT * FROM promql('rate(x[5m])', 0, '2026-01-01T00:00:00Z', '15s')"
        );
        assert_eq!(
            json_ticket_sql(br#"{"promql": "up{job='a'}", "time": 10.5}"#).unwrap(),
            "SELECT * FROM promql('up{job=''a''}', 10.5)"
        );
        for bad in [
            &br#"{"promql": "up", "start": 0}"#[..],
            br#"{"sql": 1}"#,
            br#"{"query": "x"}"#,
            br#"{"sql": "SELECT 1", "x": 1}"#,
            b"{not json",
        ] {
            assert!(
                json_ticket_sql(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn basic_auth_gives_the_password() {
        // "user:s3cret"
        assert_eq!(basic_password("dXNlcjpzM2NyZXQ="), Some("s3cret".into()));
        assert_eq!(basic_password("!!"), None);
    }
}
