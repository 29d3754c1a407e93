"""Delta commit benchmark (a benchmark, not a test): planning time and the wall time of a
one-row run as the table's log grows to 1, 100 and 1000 commits.

Each run is the orders-demo binary extracting one new row (an incremental run) into a local
S3 server; its run report gives `timings.plan_ms` (reading the table's latest snapshot,
checkpoint plus the commits after it, and planning) and `timings.commit_ms`. "After n
commits" is the median of the ten runs that read a table of n to n + 9 commits (a
checkpoint interval: one of them writes a checkpoint). A checkpoint is written every tenth
version and a version checksum (`.crc`) after every commit; planning reads the run record
from the latest checksum. The target is planning flat (within ±20 %) as the log grows.

2026-12-03: the growth measured before (17 / 100 / 310 ms) was the local S3 server's, not
ours: s3s-fs walked and stat-ed the whole bucket for every listing. local-s3 now lists in
key order and stops at the page, as S3 does. Since: 17-20 / 23.5 / 16.5-25 ms (README).

Usage: python bench/delta/commits.py [COMMITS ...]   (default: 1 100 1000)
Run through bench/delta/run.sh (release binaries); BIN_DIR=target/debug for a quick look.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, os.environ.get("BIN_DIR", os.path.join("target", "release")))
BUCKET = "bench-bucket"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(marks):
    marks = sorted(set(marks))
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen(
            [os.path.join(BIN, "local-s3"), "--root", os.path.join(tmp, "s3"),
             "--port", str(port), "--bucket", BUCKET],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            env = dict(os.environ, AWS_ACCESS_KEY_ID="local-access-key", AWS_SECRET_ACCESS_KEY="local-secret-key",
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                       RUST_LOG="warn")
            results = {}
            window = []
            # Run n reads a table of n - 1 commits.
            for n in range(1, marks[-1] + 11):
                config = os.path.join(tmp, "demo.json")
                with open(config, "w") as f:
                    json.dump({"rows": n, "rows_per_day": 1_000_000}, f)
                start = time.perf_counter()
                out = subprocess.run(
                    [os.path.join(BIN, "orders-demo"), "extract", "--config", config,
                     "--output", f"s3://{BUCKET}/delta"],
                    env=env, capture_output=True, text=True, check=True,
                )
                wall_ms = (time.perf_counter() - start) * 1000
                report = json.loads(out.stdout.strip().splitlines()[-1])
                assert report["rows"] == 1 and report["sequence"] == n, report
                window.append((report["timings"]["plan_ms"], report["timings"]["commit_ms"], wall_ms))
                window = window[-10:]
                m = n - 10
                if m in marks:
                    # The ten runs that read tables of m .. m + 9 commits.
                    results[m] = {
                        "plan_ms": statistics.median(w[0] for w in window),
                        "commit_ms": statistics.median(w[1] for w in window),
                        "wall_ms": round(statistics.median(w[2] for w in window), 1),
                    }
                    print(f"after {m:>5} commits: plan {results[m]['plan_ms']} ms, "
                          f"commit {results[m]['commit_ms']} ms, one-row run {results[m]['wall_ms']} ms "
                          f"(median of the {len(window)} runs after it)", flush=True)
            print(json.dumps(results))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 100, 1000])
