//! A synthetic GPU fleet, as the DCGM exporter and vLLM expose it: gauges (utilization,
//! temperature, power with decimals, memory), counters with occasional resets (energy,
//! PCIe bytes), and vLLM latency histograms. Deterministic (seeded), generated outside any
//! timed loop.

#![allow(dead_code)]

use quiver_ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

/// The fleet's shape and time span.
#[derive(Debug, Clone, Copy)]
pub struct FleetShape {
    pub nodes: usize,
    pub gpus_per_node: usize,
    /// Number of 15 s steps.
    pub steps: usize,
    /// Timestamp (ms) of the first step.
    pub start_ms: i64,
}

pub const STEP_MS: i64 = 15_000;

impl FleetShape {
    /// `hours` of 15 s steps ending `margin_ms` before now, off the step boundaries by 1.234 s.
    pub fn ending_now(nodes: usize, gpus_per_node: usize, hours: usize, margin_ms: i64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let steps = hours * 3600 * 1000 / STEP_MS as usize;
        FleetShape {
            nodes,
            gpus_per_node,
            steps,
            start_ms: (now - steps as i64 * STEP_MS - margin_ms) / STEP_MS * STEP_MS + 1_234,
        }
    }
}

/// One series: its labels and how its values evolve.
pub struct SeriesSpec {
    pub labels: Vec<(String, String)>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Integer gauge: random walk in [lo, hi].
    IntGauge { lo: f64, hi: f64 },
    /// Gauge with `decimals` digits.
    DecimalGauge { lo: f64, hi: f64, decimals: i32 },
    /// Ratio in [0, 1] with many digits (DCGM profiling metrics).
    Ratio,
    /// Counter: adds about `rate` per step, resets to 0 with probability 1/2000 per step.
    Counter { rate: f64, decimals: i32 },
    /// Histogram bucket counter: cumulative counts grow by `share` of the requests.
    Bucket { share: f64 },
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every series of the fleet.
pub fn fleet_series(shape: &FleetShape) -> Vec<SeriesSpec> {
    let mut out = Vec::new();
    for n in 0..shape.nodes {
        let host = format!("gpu-node-{n:03}");
        for g in 0..shape.gpus_per_node {
            let base = |name: &str| -> Vec<(String, String)> {
                [
                    ("__name__", name.to_string()),
                    ("gpu", g.to_string()),
                    (
                        "UUID",
                        format!(
                            "GPU-{:08x}-{:04x}-4a1b-9c2d-{:012x}",
                            n * 97 + g,
                            g * 31,
                            n * 1000 + g
                        ),
                    ),
                    ("device", format!("nvidia{g}")),
                    ("modelName", "NVIDIA H100 80GB HBM3".to_string()),
                    ("Hostname", host.clone()),
                    ("DCGM_FI_DRIVER_VERSION", "550.54.15".to_string()),
                    ("instance", format!("{host}:9400")),
                    ("job", "dcgm-exporter".to_string()),
                    ("namespace", "training".to_string()),
                    ("pod", format!("trainer-{}-{g}", n / 4)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
            };
            let specs = [
                (
                    "DCGM_FI_DEV_GPU_UTIL",
                    Kind::IntGauge { lo: 0.0, hi: 100.0 },
                ),
                (
                    "DCGM_FI_DEV_MEM_COPY_UTIL",
                    Kind::IntGauge { lo: 0.0, hi: 100.0 },
                ),
                (
                    "DCGM_FI_DEV_GPU_TEMP",
                    Kind::IntGauge { lo: 30.0, hi: 85.0 },
                ),
                (
                    "DCGM_FI_DEV_SM_CLOCK",
                    Kind::IntGauge {
                        lo: 1400.0,
                        hi: 1980.0,
                    },
                ),
                (
                    "DCGM_FI_DEV_FB_USED",
                    Kind::IntGauge {
                        lo: 1000.0,
                        hi: 80000.0,
                    },
                ),
                (
                    "DCGM_FI_DEV_POWER_USAGE",
                    Kind::DecimalGauge {
                        lo: 60.0,
                        hi: 700.0,
                        decimals: 3,
                    },
                ),
                ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", Kind::Ratio),
                ("DCGM_FI_PROF_DRAM_ACTIVE", Kind::Ratio),
                (
                    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                    Kind::Counter {
                        rate: 6_000_000.0,
                        decimals: 0,
                    },
                ),
                (
                    "DCGM_FI_PROF_PCIE_TX_BYTES",
                    Kind::Counter {
                        rate: 2.5e9,
                        decimals: 0,
                    },
                ),
            ];
            for (name, kind) in specs {
                out.push(SeriesSpec {
                    labels: base(name),
                    kind,
                });
            }
        }
        // vLLM on each node: a latency histogram and a gauge.
        let vllm = |name: &str, extra: Option<(&str, String)>| -> Vec<(String, String)> {
            let mut l: Vec<(String, String)> = [
                ("__name__", name.to_string()),
                ("instance", format!("{host}:8000")),
                ("job", "vllm".to_string()),
                (
                    "model_name",
                    "meta-llama/Llama-3.1-70B-Instruct".to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            if let Some((k, v)) = extra {
                l.push((k.to_string(), v));
            }
            l
        };
        let bounds = [
            0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
        ];
        for (i, le) in bounds.iter().enumerate() {
            let share = 1.0 - (-(i as f64 + 1.0) / 4.0).exp();
            out.push(SeriesSpec {
                labels: vllm(
                    "vllm:e2e_request_latency_seconds_bucket",
                    Some(("le", format!("{le}"))),
                ),
                kind: Kind::Bucket { share },
            });
        }
        out.push(SeriesSpec {
            labels: vllm(
                "vllm:e2e_request_latency_seconds_bucket",
                Some(("le", "+Inf".into())),
            ),
            kind: Kind::Bucket { share: 1.0 },
        });
        out.push(SeriesSpec {
            labels: vllm("vllm:e2e_request_latency_seconds_count", None),
            kind: Kind::Bucket { share: 1.0 },
        });
        out.push(SeriesSpec {
            labels: vllm("vllm:e2e_request_latency_seconds_sum", None),
            kind: Kind::Counter {
                rate: 310.0,
                decimals: 6,
            },
        });
        out.push(SeriesSpec {
            labels: vllm("vllm:num_requests_running", None),
            kind: Kind::IntGauge { lo: 0.0, hi: 256.0 },
        });
    }
    out
}

/// The values of one series over all steps.
pub fn values(spec: &SeriesSpec, index: usize, steps: usize) -> Vec<f64> {
    let mut rng =
        Rng(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let round = |v: f64, d: i32| {
        let p = 10f64.powi(d);
        (v * p).round() / p
    };
    let mut out = Vec::with_capacity(steps);
    match spec.kind {
        Kind::IntGauge { lo, hi } => {
            let mut v = lo + (hi - lo) * rng.unit();
            for _ in 0..steps {
                v = (v + (rng.unit() - 0.5) * (hi - lo) * 0.05).clamp(lo, hi);
                out.push(v.round());
            }
        }
        Kind::DecimalGauge { lo, hi, decimals } => {
            let mut v = lo + (hi - lo) * rng.unit();
            for _ in 0..steps {
                v = (v + (rng.unit() - 0.5) * (hi - lo) * 0.05).clamp(lo, hi);
                out.push(round(v, decimals));
            }
        }
        Kind::Ratio => {
            let mut v = rng.unit();
            for _ in 0..steps {
                v = (v + (rng.unit() - 0.5) * 0.1).clamp(0.0, 1.0);
                out.push(v);
            }
        }
        Kind::Counter { rate, decimals } => {
            let mut v = rate * 1000.0 * rng.unit();
            for _ in 0..steps {
                if rng.next().is_multiple_of(2000) {
                    v = 0.0;
                }
                v += rate * (0.5 + rng.unit());
                out.push(round(v, decimals));
            }
        }
        Kind::Bucket { share } => {
            // Requests per step are the same draw for every bucket of a node (seeded by node).
            let mut reqs = Rng(0x5851_f42d_4c95_7f2d ^ (index / 18) as u64);
            let mut v = 0.0;
            for _ in 0..steps {
                v += ((reqs.next() % 40) as f64 * share).floor();
                out.push(v);
            }
        }
    }
    out
}

/// Pre-encoded remote-write bodies: `workers` disjoint sets of series; each worker's bodies
/// in time order (one step of its series per body), so no receiver sees out-of-order samples.
/// Answers the bodies per worker and the total sample count.
// `step` indexes the values of every series of the request, not one slice.
#[allow(clippy::needless_range_loop)]
pub fn encoded_requests(shape: &FleetShape, workers: usize) -> (Vec<Vec<Vec<u8>>>, usize, usize) {
    let series = fleet_series(shape);
    let all_values: Vec<Vec<f64>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| values(s, i, shape.steps))
        .collect();
    let mut out = vec![Vec::with_capacity(shape.steps); workers];
    let mut total = 0;
    for (w, bodies) in out.iter_mut().enumerate() {
        let mine: Vec<usize> = (0..series.len()).filter(|i| i % workers == w).collect();
        for step in 0..shape.steps {
            let t = shape.start_ms + step as i64 * STEP_MS;
            let req = WriteRequest {
                timeseries: mine
                    .iter()
                    .map(|&i| TimeSeries {
                        labels: series[i]
                            .labels
                            .iter()
                            .map(|(n, v)| Label {
                                name: n.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                        samples: vec![Sample {
                            value: all_values[i][step],
                            timestamp: t,
                        }],
                        histograms: Vec::new(),
                    })
                    .collect(),
            };
            total += mine.len();
            bodies.push(encode(&req));
        }
    }
    (out, total, series.len())
}
