//! Prometheus's own table tests of the operations ported from its `model/histogram` package
//! (`float_histogram_test.go` and `generic_test.go`, at commit d15adb9a), translated case by
//! case: the same inputs and the same expected values, each table run by one driver doing
//! what the Go test does. Case names are Go's, so a failure can be looked up there.

mod arith;
mod compact;
mod compare;
mod iter;

use super::Span;

/// `[]Span{{offset, length}, …}` as Go's tables write it.
fn spans(s: &[(i32, u32)]) -> Vec<Span> {
    s.iter()
        .map(|&(offset, length)| Span { offset, length })
        .collect()
}
