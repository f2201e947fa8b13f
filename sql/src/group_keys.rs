//! Grouping by a dictionary-encoded string column (`samples.metric`) groups by its values.
//!
//! DataFusion groups a single `Dictionary(_, Utf8)` key through its generic row format (every
//! row's string re-encoded, compared and copied), where a plain `Utf8` key has a specialized,
//! much faster hash table. This rule casts such keys to their value type inside the aggregate
//! and casts the (few) result rows back, so the plan's schema does not change:
//!
//! ```text
//! Aggregate: group=[metric]            Projection: CAST(metric AS Dictionary) AS metric, …
//!   TableScan: samples        ──►        Aggregate: group=[CAST(metric AS Utf8) AS metric]
//!                                          TableScan: samples
//! ```
//!
//! Measured on 24 M samples grouped by metric: about 20 % less time for the whole query
//! (`docs/benchmarks.md`).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, LogicalPlan, Projection, cast, col,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The rule (registered in the SQL session).
#[derive(Debug, Default)]
pub struct GroupByDictionaryValues;

impl OptimizerRule for GroupByDictionaryValues {
    fn name(&self) -> &str {
        "group_by_dictionary_values"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = plan else {
            return Ok(Transformed::no(plan));
        };
        let input_schema = agg.input.schema();
        // Per group expression: the value type to group by instead, if it is a dictionary.
        let mut recast = Vec::with_capacity(agg.group_expr.len());
        for e in &agg.group_expr {
            let value = match e {
                // Grouping sets keep their expressions as they are.
                Expr::GroupingSet(_) => None,
                e => match e.get_type(input_schema)? {
                    DataType::Dictionary(_, v)
                        if matches!(*v, DataType::Utf8 | DataType::LargeUtf8) =>
                    {
                        Some(*v)
                    }
                    _ => None,
                },
            };
            recast.push(value);
        }
        if recast.iter().all(Option::is_none) {
            return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
        }
        let old_schema = agg.schema.clone();
        let group_expr: Vec<Expr> = agg
            .group_expr
            .iter()
            .zip(&recast)
            .enumerate()
            .map(|(i, (e, value))| match value {
                Some(v) => {
                    let (qualifier, field) = old_schema.qualified_field(i);
                    cast(e.clone(), v.clone()).alias_qualified(qualifier.cloned(), field.name())
                }
                None => e.clone(),
            })
            .collect();
        let inner = Aggregate::try_new(agg.input.clone(), group_expr, agg.aggr_expr.clone())?;
        // Back to the original types and names, column by column.
        let exprs: Vec<Expr> = old_schema
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                let column = col(Column::new(qualifier.cloned(), field.name()));
                match recast.get(i) {
                    Some(Some(_)) => cast(column, field.data_type().clone())
                        .alias_qualified(qualifier.cloned(), field.name()),
                    _ => column,
                }
            })
            .collect();
        let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(inner)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, DictionaryArray, Float64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    fn context(with_rule: bool) -> SessionContext {
        let metric: DictionaryArray<Int32Type> =
            ["b", "a", "b", "c", "a", "b"].into_iter().collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("metric", metric.data_type().clone(), false),
            Field::new("value", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(metric),
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        if with_rule {
            ctx.add_optimizer_rule(Arc::new(GroupByDictionaryValues));
        }
        ctx.register_table(
            "samples",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> (String, Vec<DataType>) {
        let df = ctx.sql(sql).await.unwrap();
        let batches = df.collect().await.unwrap();
        let types = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        (pretty_format_batches(&batches).unwrap().to_string(), types)
    }

    #[tokio::test]
    async fn dictionary_keys_group_by_their_values_with_the_same_answer_and_types() {
        for sql in [
            "SELECT metric, count(*), sum(value) FROM samples GROUP BY metric ORDER BY metric",
            "SELECT sum(value), metric FROM samples GROUP BY metric HAVING sum(value) > 3 ORDER BY metric",
            "SELECT metric, count(*) FROM samples GROUP BY ROLLUP (metric) ORDER BY metric",
        ] {
            let plain = answer(&context(false), sql).await;
            let rewritten = answer(&context(true), sql).await;
            assert_eq!(plain, rewritten, "{sql}");
        }
        let explain = answer(
            &context(true),
            "EXPLAIN SELECT metric, count(*) FROM samples GROUP BY metric",
        )
        .await
        .0;
        assert!(
            explain.contains("CAST(samples.metric AS Utf8)"),
            "{explain}"
        );
    }
}
