"""Side-by-side benchmark: orders-demo -> Parquet (ZSTD) -> local S3 vs pyarrow writing
the same data to the same server. Reports rows/s, MB/s and peak RSS of each process.

Usage: python bench/sdk/bench.py [ROWS ...]   (default: 1000000 10000000)
Run through bench/sdk/run.sh, which builds the release binaries and the virtualenv.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")
BUCKET = "bench-bucket"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measured(cmd, env=None):
    """Run cmd; return (stdout, wall seconds, peak RSS MiB, cpu seconds)."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{cmd[0]} failed ({status}): {err.decode()[-2000:]}")
    return out.decode(), wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1_000_000, 10_000_000]
    data = tempfile.mkdtemp(prefix="sdk-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([os.path.join(BIN, "local-s3"), "--root", data, "--port", str(port), "--bucket", BUCKET],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    server.stdout.readline()
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="local-access-key",
               AWS_SECRET_ACCESS_KEY="local-secret-key", AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", RUST_LOG="warn")
    rows_out = []
    try:
        for rows in sizes:
            cfg = os.path.join(data, f"demo-{rows}.json")
            with open(cfg, "w") as f:
                json.dump({"rows": rows, "rows_per_day": rows // 4, "batch_size": 8192}, f)
            out, wall, rss, cpu = measured([os.path.join(BIN, "orders-demo"), "extract", "--config", cfg,
                                            "--output", f"s3://{BUCKET}/rust-{rows}", "--concurrency", "2"], env)
            report = json.loads(out.strip().splitlines()[-1])
            rows_out.append(("orders-demo (Rust)", rows, report["bytes"], wall, rss, cpu))
            out, wall, rss, cpu = measured([sys.executable, os.path.join(ROOT, "bench", "sdk", "pyarrow_writer.py"),
                                            str(rows), endpoint, BUCKET, f"pyarrow-{rows}"], env)
            r = json.loads(out.strip().splitlines()[-1])
            rows_out.append(("pyarrow ParquetWriter", rows, r["bytes"], wall, rss, cpu))
    finally:
        server.terminate()
        server.wait()
    print(f"{'writer':<24}{'rows':>12}{'MB out':>10}{'wall s':>9}{'rows/s':>13}{'MB/s':>8}{'CPU s':>8}{'peak RSS MiB':>14}")
    for name, rows, nbytes, wall, rss, cpu in rows_out:
        print(f"{name:<24}{rows:>12}{nbytes / 1e6:>10.1f}{wall:>9.2f}{rows / wall:>13,.0f}{nbytes / 1e6 / wall:>8.1f}{cpu:>8.2f}{rss:>14.1f}")


if __name__ == "__main__":
    main()
