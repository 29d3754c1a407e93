"""Side-by-side benchmark: orders-demo -> Parquet (ZSTD level 1) -> local S3 vs pyarrow
writing the same data, same codec and row groups, to the same server, under the rules of
bench/fair.py (interleaved rounds, work time apart from start-up, every output checked).

Both write the 4 day-partitions 2 at a time: orders-demo with --concurrency 2, pyarrow in
2 threads.

Usage: python bench/sdk/bench.py [--rounds N] [ROWS ...]   (default: 3 rounds of 1000000 and 10000000)
Run through bench/sdk/run.sh, which builds the release binaries and the virtualenv.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fair  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
BUCKET = "bench-bucket"
CONCURRENCY = 2


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    args = sys.argv[1:]
    rounds = 3
    if args[:1] == ["--rounds"]:
        rounds, args = int(args[1]), args[2:]
    sizes = [int(a) for a in args] or [1_000_000, 10_000_000]
    data = tempfile.mkdtemp(prefix="sdk-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([os.path.join(BIN, "local-s3"), "--root", data, "--port", str(port), "--bucket", BUCKET],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    server.stdout.readline()
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="local-access-key",
               AWS_SECRET_ACCESS_KEY="local-secret-key", AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", RUST_LOG="warn")
    bucket_dir = Path(data) / BUCKET
    try:
        for rows in sizes:
            cfg = os.path.join(data, f"demo-{rows}.json")
            with open(cfg, "w") as f:
                json.dump({"rows": rows, "rows_per_day": rows // 4, "batch_size": 8192}, f)
            contenders = [
                fair.Contender(
                    "orders-demo (Rust SDK)",
                    lambda r, rows=rows, cfg=cfg: [os.path.join(BIN, "orders-demo"), "extract", "--config", cfg,
                                                   "--output", f"s3://{BUCKET}/rust-{rows}-{r}",
                                                   "--concurrency", str(CONCURRENCY), "--codec", "zstd", "--zstd-level", "1"],
                    lambda r, rows=rows: bucket_dir / f"rust-{rows}-{r}",
                    parallelism=f"--concurrency {CONCURRENCY} (4 partitions, {CONCURRENCY} at a time)",
                ),
                fair.Contender(
                    "pyarrow ParquetWriter",
                    lambda r, rows=rows: [sys.executable, os.path.join(ROOT, "bench", "sdk", "pyarrow_writer.py"),
                                          str(rows), endpoint, BUCKET, f"pyarrow-{rows}-{r}", str(CONCURRENCY)],
                    lambda r, rows=rows: bucket_dir / f"pyarrow-{rows}-{r}",
                    parallelism=f"{CONCURRENCY} threads (4 partitions, {CONCURRENCY} at a time)",
                ),
            ]
            results = fair.run_rounds(contenders, rounds, env)
            print(f"\n### {rows:,} rows, {rounds} interleaved rounds\n")
            print(fair.table(results, "orders-demo (Rust SDK)", rows))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
