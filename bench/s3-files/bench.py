"""The file ingestion contenders under the rules of bench/fair.py. Called by run.sh once
the objects and the local S3 server are up. Usage: bench.py ROUNDS ROWS CONTENDERS..."""
import json
import os
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import fair  # noqa: E402

COLUMNS = [
    {"name": "id", "type": "int64", "nullable": False},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": "float64"},
    {"name": "day", "type": "date"},
    {"name": "placed_at", "type": "timestamp"},
    {"name": "shipped", "type": "boolean"},
]


def main():
    rounds, rows, names = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    work, target, py = Path(os.environ["WORK"]), os.environ["TARGET"], os.environ["PY"]
    s3 = work / "s3" / "bench"
    for fmt, ext in (("csv", "csv"), ("jsonl", "jsonl")):
        config = {"bucket": "bench", "streams": [{
            "name": f"orders_{fmt}", "prefix": "src/", "glob": f"data.{ext}",
            "format": {"type": fmt}, "schema": COLUMNS}]}
        (work / f"{fmt}.json").write_text(json.dumps(config))

    def ours(fmt):
        return fair.Contender(
            f"s3_files_{fmt}",
            lambda r: [os.path.join(target, "s3-files"), "extract", "--config", str(work / f"{fmt}.json"),
                       "--output", f"s3://bench/sf-{fmt}-{r}", "--concurrency", "2",
                       "--codec", "zstd", "--zstd-level", "1"],
            lambda r: s3 / f"sf-{fmt}-{r}",
            parallelism="the object in 128 MiB ranges, --concurrency 2",
        )

    def duck(fmt):
        return fair.Contender(
            f"duckdb_{fmt}",
            lambda r: [py, os.path.join(HERE, "duckdb_run.py"), fmt, f"s3://bench/src/data.{fmt}",
                       f"s3://bench/duck-{fmt}-{r}/data.parquet"],
            lambda r: s3 / f"duck-{fmt}-{r}",
            parallelism="threads = 2",
        )

    def arrow(fmt):
        return fair.Contender(
            f"pyarrow_{fmt}",
            lambda r: [py, os.path.join(HERE, "pyarrow_run.py"), fmt, f"bench/src/data.{fmt}",
                       f"bench/pa-{fmt}-{r}/data.parquet"],
            lambda r: s3 / f"pa-{fmt}-{r}",
            parallelism="pyarrow's own threads (CPU count)",
        )

    all_contenders = {}
    for fmt in ("csv", "jsonl"):
        for make in (ours, duck, arrow):
            c = make(fmt)
            all_contenders[c.name] = c
    unknown = [x for x in names if x not in all_contenders]
    if unknown:
        sys.exit(f"unknown contenders: {unknown}; known: {list(all_contenders)}")
    for fmt in ("csv", "jsonl"):
        chosen = [all_contenders[x] for x in names if x.endswith(fmt)]
        if not chosen:
            continue
        results = fair.run_rounds(chosen, rounds, dict(os.environ))
        print(f"\n### {fmt}, {rows:,} rows, {rounds} interleaved rounds\n")
        print(fair.table(results, f"s3_files_{fmt}", rows))


if __name__ == "__main__":
    main()
