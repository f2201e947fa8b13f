//! Remote-write decoding: snappy + protobuf + label validation into a `WriteBatch`, on
//! realistic GPU-fleet requests (one step of ~1,500 series per request, ~11 labels each).

#[path = "common/fleet.rs"]
mod fleet;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleet::{FleetShape, encoded_requests};
use quiver_storage::Limits;

fn decode(c: &mut Criterion) {
    let shape = FleetShape {
        nodes: 64,
        gpus_per_node: 8,
        steps: 4,
        start_ms: 1_700_000_000_000,
    };
    let (bodies, _, _) = encoded_requests(&shape, 4);
    let body = &bodies[0][0];
    let samples = quiver_ingest::remote_write::decode(body, usize::MAX, &Limits::default())
        .unwrap()
        .num_samples();
    let limits = Limits::default();
    let mut g = c.benchmark_group("remote_write_decode");
    g.throughput(Throughput::Elements(samples as u64));
    g.bench_function(format!("gpu_fleet_{samples}_series_per_request"), |b| {
        b.iter(|| quiver_ingest::remote_write::decode(body, usize::MAX, &limits).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
