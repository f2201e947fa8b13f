//! The write path below HTTP: `Db::append` of decoded batches (series lookup, WAL group commit
//! with fsync, head insert), from 4 concurrent writers as a remote-write receiver sees them.

#[path = "common/fleet.rs"]
mod fleet;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleet::{FleetShape, encoded_requests};
use object_store::local::LocalFileSystem;
use quiver_storage::{Db, Limits, Options, WriteBatch};

fn append(c: &mut Criterion) {
    let workers = 4;
    let shape = FleetShape {
        nodes: 64,
        gpus_per_node: 8,
        steps: 40,
        start_ms: 1_700_000_000_000,
    };
    let (bodies, total, _) = encoded_requests(&shape, workers);
    let limits = Limits::default();
    let batches: Vec<Vec<WriteBatch>> = bodies
        .iter()
        .map(|w| {
            w.iter()
                .map(|b| quiver_ingest::remote_write::decode(b, usize::MAX, &limits).unwrap())
                .collect()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks");
    std::fs::create_dir_all(&blocks).unwrap();
    let mut opts = Options::new(
        dir.path().join("wal"),
        Arc::new(LocalFileSystem::new_with_prefix(&blocks).unwrap()),
    );
    opts.max_head_samples = usize::MAX;
    let db = rt.block_on(Db::open(opts)).unwrap();

    let mut g = c.benchmark_group("wal_append");
    g.throughput(Throughput::Elements(total as u64));
    g.sample_size(10);
    g.bench_function(format!("gpu_fleet_{workers}_writers"), |b| {
        b.iter_batched(
            || batches.clone(),
            |batches| {
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for w in batches {
                        let db = db.clone();
                        tasks.push(tokio::spawn(async move {
                            for batch in w {
                                db.append(batch).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
