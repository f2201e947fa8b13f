//! Selectors: matchers resolve to series ids in the index at plan time; the scan reads only
//! those series over the time the steps need (widened by lookback, range and offset).

use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan, LogicalPlanBuilder};
use promql_parser::label::{MatchOp as PMatchOp, Matcher as PMatcher};
use promql_parser::parser::{MatrixSelector, VectorSelector};
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_storage::provider::SeriesScan;
use quiver_storage::{Db, MatchOp, Matcher, Matchers, SeriesId};

use super::{ParamPlan, Planned, Planner, duration_ms};
use crate::error::{Error, Result};
use crate::labelset::{self, METRIC_NAME};
use crate::plan::{
    Param, PromNode, PromOp, RangeFn, RangeFnOp, RangeSource, SeriesMap, Steps, StreamAgg,
    TimeShift, VectorSelectOp,
};

/// A selector's samples, ready for a range function.
pub(crate) struct RangeInput {
    pub plan: LogicalPlan,
    pub source: RangeSource,
    pub shift: TimeShift,
    pub range: i64,
    /// The selector's series may hold native histograms in the window.
    pub histograms: bool,
}

impl Planner<'_> {
    pub(crate) fn plan_vector_selector(
        &self,
        vs: &VectorSelector,
        steps: Steps,
        timestamp_fn: bool,
        aggregate: Option<StreamAgg>,
    ) -> Result<Planned> {
        let shift = self.shift(&vs.at, &vs.offset);
        let lookback = self.opts.lookback;
        let (lo, hi) = ref_bounds(shift, steps);
        // One reference time (an instant query, or `@`): each series' newest sample is all
        // the kernel looks at.
        let (series, scan, histograms) = self.select(vs, lo - lookback + 1, hi, lo == hi)?;
        let op = VectorSelectOp {
            steps,
            shift,
            lookback,
            series,
            timestamp_fn,
            aggregate,
            histograms,
        };
        Ok(Planned::Vector(
            PromNode::new(PromOp::VectorSelect(op), vec![scan])?.into_plan(),
        ))
    }

    pub(crate) fn matrix_input(&self, ms: &MatrixSelector, steps: Steps) -> Result<RangeInput> {
        let shift = self.shift(&ms.vs.at, &ms.vs.offset);
        let range = duration_ms(&ms.range);
        let (lo, hi) = ref_bounds(shift, steps);
        let (series, plan, histograms) = self.select(&ms.vs, lo - range + 1, hi, false)?;
        Ok(RangeInput {
            plan,
            source: RangeSource::Selector(series),
            shift,
            range,
            histograms,
        })
    }

    /// `x[5m]` as a query's result: the raw samples in the window.
    pub(crate) fn plan_raw_matrix(&self, ms: &MatrixSelector, steps: Steps) -> Result<Planned> {
        raw_window(self.matrix_input(ms, steps)?, steps)
    }

    /// Resolves the selector and builds the scan of its series in `[mint, maxt]` (only each
    /// one's newest sample there with `newest_only`); answers too whether they may hold
    /// native histograms there (the scan then has a `histogram` column).
    fn select(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        newest_only: bool,
    ) -> Result<(SeriesMap, LogicalPlan, bool)> {
        let sets = matcher_sets(vs)?;
        // Every series the matchers select (samples or not): the map the kernels look labels
        // up in. Only those with samples in range are scanned.
        let map = match &sets[..] {
            [one] => SeriesMap {
                series: self.opts.selections.get(self.db, one),
            },
            _ => {
                let mut all: Vec<(u64, Vec<u8>)> = Vec::new();
                for m in &sets {
                    all.extend(self.opts.selections.get(self.db, m).iter().cloned());
                }
                all.sort_by_key(|s| s.0);
                all.dedup_by_key(|s| s.0);
                SeriesMap::new(all)
            }
        };
        let found =
            self.db
                .with_samples(map.series.iter().map(|(id, _)| SeriesId(*id)), mint, maxt);
        let empty = found.is_empty();
        let histograms = !empty && self.db.may_have_histograms(&found, mint, maxt);
        let source = SeriesScan::new(self.db.clone(), found, mint, maxt, newest_only)
            .with_histograms(histograms);
        let columns = if histograms {
            vec![1, 2, 3, 4]
        } else {
            vec![1, 2, 3]
        };
        let scan = LogicalPlanBuilder::scan(
            "samples",
            provider_as_source(Arc::new(source)),
            Some(columns),
        )?
        .build()?;
        // Nothing to read: no scan to plan.
        let scan = if empty {
            LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: scan.schema().clone(),
            })
        } else {
            scan
        };
        Ok((map, scan, histograms))
    }
}

/// Selections resolved earlier (every series a matcher set selects, in id order, with their
/// encoded label sets), each kept while no series of its metric (of any metric, for a matcher
/// set without a metric name) was added or removed: rules and dashboards run the same
/// selectors again and again, and resolving them (index, label copies, encoding) was a large
/// part of a small query.
#[derive(Debug, Default)]
pub struct SelectionCache {
    inner: Mutex<foldhash::HashMap<String, (u64, Selection)>>,
}

type Selection = Arc<Vec<(u64, Vec<u8>)>>;

/// Selections kept at most (the cache starts over when full).
const MAX_CACHED_SELECTIONS: usize = 4096;

impl SelectionCache {
    fn get(&self, db: &Db, matchers: &Matchers) -> Selection {
        let name = matchers
            .0
            .iter()
            .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str());
        // Read first: a series added while selecting changes the generation, so what is
        // cached below is never taken for newer than it is.
        let generation = db.series_generation_of(name);
        let key = format!("{matchers:?}");
        if let Some((g, s)) = self.inner.lock().get(&key)
            && *g == generation
        {
            return s.clone();
        }
        let selection: Selection = Arc::new(
            db.select(matchers)
                .into_iter()
                .map(|(id, l)| {
                    (
                        id.0,
                        labelset::encode(l.iter().map(|l| (&*l.name, &*l.value))),
                    )
                })
                .collect(),
        );
        let mut c = self.inner.lock();
        if c.len() >= MAX_CACHED_SELECTIONS {
            c.clear();
        }
        c.insert(key, (generation, selection.clone()));
        selection
    }
}

/// A range input as a query's result: its points in the window (a range vector).
pub(crate) fn raw_window(input: RangeInput, steps: Steps) -> Result<Planned> {
    Ok(Planned::Matrix(range_fn_plan(
        RangeFn::Raw,
        steps,
        input,
        vec![],
        None,
    )?))
}

/// The earliest and latest reference time over the steps.
pub(crate) fn ref_bounds(shift: TimeShift, steps: Steps) -> (i64, i64) {
    let (a, b) = (shift.reference(steps.start), shift.reference(steps.end));
    (a.min(b), a.max(b))
}

pub(crate) fn range_fn_plan(
    func: RangeFn,
    steps: Steps,
    input: RangeInput,
    params: Vec<ParamPlan>,
    aggregate: Option<StreamAgg>,
) -> Result<LogicalPlan> {
    let mut args = Vec::with_capacity(params.len());
    let mut step_arg = None;
    let mut inputs = vec![input.plan];
    for (i, p) in params.into_iter().enumerate() {
        match p {
            ParamPlan::Const(v) => args.push(Param(v)),
            ParamPlan::Steps(plan) if step_arg.is_none() => {
                step_arg = Some(i);
                args.push(Param(f64::NAN));
                inputs.push(plan);
            }
            ParamPlan::Steps(_) => {
                return Err(Error::BadData(
                    "only one parameter per function may vary by step".into(),
                ));
            }
        }
    }
    if input.histograms && func.histogram_mode() == crate::functions::range::HistogramMode::Refuses
    {
        return Err(Error::Execution(format!(
            "{} over native histograms is not supported yet (the selected series hold native \
             histogram samples in the queried range)",
            func.name()
        )));
    }
    let op = RangeFnOp {
        func,
        steps,
        shift: input.shift,
        range: input.range,
        source: input.source,
        args,
        step_arg,
        aggregate,
        histograms: input.histograms,
    };
    Ok(PromNode::new(PromOp::RangeFn(op), inputs)?.into_plan())
}

/// The selector's matchers as storage matchers; `{a="b" or c="d"}` gives several sets.
pub fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Matchers>> {
    let convert = |ms: &[PMatcher]| -> Result<Matchers> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(labelset::METRIC_NAME, name.clone()));
        }
        for m in ms {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::RegexMatch,
                PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            out.push(
                Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| Error::BadData(e.to_string()))?,
            );
        }
        Ok(Matchers(out))
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers
            .or_matchers
            .iter()
            .map(|set| convert(set))
            .collect()
    }
}

/// The labels `absent(selector)` gives: the equality matchers, except `__name__` and names
/// matched more than once or otherwise.
pub(crate) fn absent_labels(vs: &VectorSelector) -> Vec<u8> {
    let ms = &vs.matchers.matchers;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for m in ms {
        if m.name == labelset::METRIC_NAME {
            continue;
        }
        let others = ms.iter().filter(|o| o.name == m.name).count();
        if matches!(m.op, PMatchOp::Equal) && others == 1 {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    labelset::encode_unsorted(&pairs)
}
