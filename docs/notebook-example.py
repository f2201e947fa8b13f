"""Quiver from a notebook: two training runs, the best step of each, and what its GPU did.

A researcher's question, end to end:
  1. log two training runs (their metrics, step by step, and their parameters);
  2. GPU utilization arrives as it would from the DCGM exporter (here imported as text);
  3. ask one SQL question over Flight SQL (ADBC): for each run, its best validation loss and at
     which step, and the average utilization of the GPU it ran on while it ran;
  4. read a PromQL range query as an Arrow table with plain pyarrow.flight.

Needs a running Quiver (`cargo run --release`) and `pip install pyarrow pandas
adbc-driver-flightsql`. Run it:

    python3 docs/notebook-example.py --http http://localhost:9090 --flight grpc://localhost:50051

(with `--flight.token-file`, pass `--token <token>`). The same cells work in Jupyter.
"""

import argparse
import json
import math
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.flight as flight

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--http", default="http://localhost:9090")
parser.add_argument("--flight", default="grpc://localhost:50051")
parser.add_argument("--token", default=None)
parser.add_argument("--experiment", default="notebook-demo")
args = parser.parse_args()

headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}


def post(path, body, content_type="application/json"):
    req = urllib.request.Request(
        args.http + path,
        data=body.encode(),
        headers={"Content-Type": content_type, **headers},
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        return r.read().decode()


# --- 1. Two runs, logged every 30 s for an hour that ended a few minutes ago. -------------------
end = int(time.time()) - 300
start = end - 3600
runs = {
    # run id: (GPU it ran on, learning rate, the step its validation loss bottoms out at)
    "run-a": ("0", 3e-4, 80),
    "run-b": ("1", 1e-3, 50),
}
for run, (gpu, lr, best) in runs.items():
    lines = []
    for step in range(1, 121):
        t = start + step * 30
        train = 2.0 * math.exp(-step / 40)
        # Validation loss falls, then overfits after `best`.
        val = 0.5 + (step - best) ** 2 / 20000 + (0.1 if run == "run-a" else 0.0)
        lines.append(json.dumps({"step": step, "timestamp": t,
                                 "metrics": {"train_loss": train, "val_loss": val}}))
    post(f"/api/v1/experiments/{args.experiment}/runs/{run}/metrics", "\n".join(lines))
    post(f"/api/v1/experiments/{args.experiment}/runs/{run}/params",
         json.dumps({"lr": lr, "gpu": gpu, "model": "resnet50"}))

# --- 2. GPU utilization, as the DCGM exporter reports it (scraped every 15 s). -------------------
text = []
for gpu, busy in (("0", 92.0), ("1", 61.0), ("2", 3.0)):
    for i in range(0, 3600 // 15 + 1):
        t = start + i * 15
        text.append(f'DCGM_FI_DEV_GPU_UTIL{{Hostname="node-1",gpu="{gpu}"}} {busy + (i % 4)} {t * 1000}')
post("/api/v1/import/prometheus", "\n".join(text) + "\n", "text/plain")

# --- 3. One SQL question over Flight SQL. --------------------------------------------------------
QUESTION = f"""
WITH val AS (
  SELECT run_id, step, value, timestamp,
         row_number() OVER (PARTITION BY run_id ORDER BY value) AS rank
  FROM experiments.run_metrics
  WHERE experiment = '{args.experiment}' AND key = 'val_loss'
),
span AS (
  SELECT run_id, min(timestamp) AS started, max(timestamp) AS ended
  FROM experiments.run_metrics
  WHERE experiment = '{args.experiment}'
  GROUP BY run_id
)
SELECT v.run_id, r.lr, r.gpu, v.step AS best_step, v.value AS best_val_loss,
       avg(u.value) AS gpu_util_during_run
FROM val v
JOIN experiments.runs r ON r.experiment = '{args.experiment}' AND r.run_id = v.run_id
JOIN span s ON s.run_id = v.run_id
JOIN metrics."DCGM_FI_DEV_GPU_UTIL" u
  ON u.gpu = r.gpu AND u.timestamp BETWEEN s.started AND s.ended
WHERE v.rank = 1
GROUP BY v.run_id, r.lr, r.gpu, v.step, v.value
ORDER BY best_val_loss
"""
db_kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {args.token}"} if args.token else {}
with flight_sql.connect(args.flight, db_kwargs=db_kwargs, autocommit=True) as conn, conn.cursor() as cur:
    cur.execute(QUESTION)
    best = cur.fetch_df()
print("Best step of each run, and its GPU meanwhile:")
print(best.to_string(index=False))

# --- 4. PromQL as Arrow, with plain pyarrow.flight and a JSON ticket. -----------------------------
client = flight.FlightClient(args.flight)
options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {args.token}".encode())]) if args.token else None
ticket = flight.Ticket(json.dumps({
    "promql": f'avg_over_time(val_loss{{experiment="{args.experiment}"}}[10m])',
    "start": start + 600, "end": end, "step": "5m",
}).encode())
curves = client.do_get(ticket, options=options).read_all() if options else client.do_get(ticket).read_all()
print()
print(f"10-minute average validation loss, every 5 minutes: {curves.num_rows} points")
print(curves.to_pandas().pivot(index="timestamp", columns="run_id", values="value").round(4).to_string())
