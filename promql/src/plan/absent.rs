//! `absent` and `absent_over_time`: a single series, labelled from the selector's equality
//! matchers, at each step where the input has nothing.

use foldhash::{HashSet, HashSetExt};

use datafusion::arrow::array::RecordBatch;

use super::Steps;
use super::input::{VectorBuilder, for_each_hist_row, for_each_vector_row};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsentOp {
    pub steps: Steps,
    pub labels: Vec<u8>,
}

impl AbsentOp {
    pub(super) fn evaluate(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        let mut present = HashSet::new();
        for_each_vector_row(input, |_, t, _| {
            present.insert(t);
        });
        // A histogram sample is a sample too.
        for_each_hist_row(input, |_, t, _| {
            present.insert(t);
        });
        let mut out = VectorBuilder::default();
        for t in self.steps.iter() {
            if !present.contains(&t) {
                out.push(&self.labels, t, 1.0);
            }
        }
        out.finish()
    }
}
