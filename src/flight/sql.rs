//! Flight SQL over the server's SQL session: statements, metadata (`GetSqlInfo`,
//! `GetCatalogs`, `GetDbSchemas`, `GetTables` with schemas, `GetTableTypes`) and prepared
//! statements. Results stream as DataFusion produces them.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
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
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::prelude::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::DoGetStream;
use super::handle::Handle;
use crate::state::AppState;

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

/// A planning error: the client's statement (a write refused as read-only included).
fn plan_error(e: DataFusionError) -> Status {
    if quiver_sql::guard::is_timeout(&e) || quiver_sql::guard::is_resources_exhausted(&e) {
        return execution_error(e);
    }
    Status::invalid_argument(e.to_string())
}

/// An error of a running query: past `--query.timeout`, `DEADLINE_EXCEEDED`; past
/// `--query.max-memory`, `RESOURCE_EXHAUSTED`.
fn execution_error(e: DataFusionError) -> Status {
    if quiver_sql::guard::is_timeout(&e) {
        Status::deadline_exceeded(e.to_string())
    } else if quiver_sql::guard::is_resources_exhausted(&e) {
        Status::resource_exhausted(e.to_string())
    } else {
        Status::internal(e.to_string())
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
pub(super) struct QuiverFlightSql {
    pub state: AppState,
}

impl QuiverFlightSql {
    #[allow(clippy::result_large_err)]
    fn session(&self) -> Result<Arc<quiver_sql::SqlSession>, Status> {
        self.state
            .sql()
            .cloned()
            .map_err(|e| Status::unavailable(e.message))
    }

    /// A turn among `--query.max-concurrency`.
    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.state.query_permit().await.map_err(|e| {
            if e.error_type == crate::error::ErrorType::Timeout {
                Status::deadline_exceeded(e.message)
            } else {
                Status::unavailable(e.message)
            }
        })
    }

    /// Plans a statement in a turn of its own: planning can run a query (`promql()` is
    /// evaluated when the plan is built), so `GetFlightInfo` and prepared statements wait
    /// like `DoGet` does.
    async fn plan_in_turn(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<DataFrame, Status> {
        let _permit = self.permit().await?;
        self.plan(sql, params).await
    }

    /// Plans a statement; the caller holds a turn.
    async fn plan(&self, sql: &str, params: Option<ParamValues>) -> Result<DataFrame, Status> {
        let mut df = self.session()?.sql(sql).await.map_err(plan_error)?;
        if let Some(p) = params {
            df = df.with_param_values(p).map_err(plan_error)?;
        }
        Ok(df)
    }

    /// Runs a statement and streams its batches as they come.
    pub async fn stream(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<DoGetStream, Status> {
        // A turn among `--query.max-concurrency`, held until the stream is dropped.
        let permit = self.permit().await?;
        let df = self.plan(sql, params).await?;
        let batches = self.session()?.execute(df).await.map_err(execution_error)?;
        let schema = batches.schema();
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches.map_err(|e| FlightError::Tonic(Box::new(execution_error(e)))))
            .map_err(Status::from)
            .map(move |item| {
                let _held = &permit;
                item
            });
        Ok(Box::pin(data))
    }

    /// A FlightInfo whose one endpoint's ticket is `ticket`.
    #[allow(clippy::result_large_err)]
    fn info(
        schema: &Schema,
        ticket: &impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(ticket.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(&flight_schema(schema))
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner());
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
        // The auth layer has checked the credentials; answer with the bearer header clients
        // use from now on: the token for the token, a session token for a user.
        let out = futures::stream::once(async {
            Ok(HandshakeResponse {
                protocol_version: 0,
                payload: Default::default(),
            })
        });
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(out));
        let principal = request.extensions().get::<crate::auth::Principal>();
        if let Some(bearer) = super::auth::handshake_token(self.state.auth(), principal) {
            let v = MetadataValue::try_from(bearer)
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
        let df = self.plan_in_turn(&query.query, None).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Self::info(df.schema().as_arrow(), &ticket, request)
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
        let df = self
            .plan_in_turn(&handle.sql, handle.param_values()?)
            .await?;
        Self::info(df.schema().as_arrow(), &cmd, request)
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
        let df = self.plan_in_turn(&query.query, None).await?;
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
        self.plan_in_turn(&handle.sql, handle.param_values()?)
            .await?;
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
        Self::info(&schema, &query, request)
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
        Self::info(&schema, &query, request)
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
        Self::info(&schema, &query, request)
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
        Self::info(&schema, &query, request)
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
        Self::info(&table_types_schema(), &query, request)
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
