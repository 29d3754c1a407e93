"""The API extraction contenders under bench/fair.py's rules. Usage: bench.py ROUNDS RECORDS"""
import os
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import fair  # noqa: E402


def main():
    rounds, records = int(sys.argv[1]), int(sys.argv[2])
    work, target, py = Path(os.environ["WORK"]), os.environ["TARGET"], os.environ["PY"]
    api, page = os.environ["API"], os.environ["PAGE"]
    s3 = work / "s3" / "bench"
    contenders = [
        fair.Contender("floor", lambda r: [py, os.path.join(HERE, "requests_run.py"), api, page, "-"],
                       lambda r: None, parallelism="sequential pages, discarded"),
        fair.Contender("http_api",
                       lambda r: [os.path.join(target, "http-api"), "extract", "--config", str(work / "connector.json"),
                                  "--output", f"s3://bench/api-{r}", "--codec", "zstd", "--zstd-level", "1"],
                       lambda r: s3 / f"api-{r}", parallelism="sequential pages"),
        fair.Contender("python_requests",
                       lambda r: [py, os.path.join(HERE, "requests_run.py"), api, page, f"bench/py-{r}/data.parquet"],
                       lambda r: s3 / f"py-{r}", parallelism="sequential pages"),
    ]
    results = fair.run_rounds(contenders, rounds, dict(os.environ))
    pages = -(-records // int(page)) + 1
    print(f"\n### {records:,} records, pages of {page} ({pages} requests), {rounds} interleaved rounds\n")
    print(fair.table(results, "http_api", records))
    import statistics
    work_of = {r.contender.name: statistics.median([x.work_s for x in r.runs if x.error is None] or [0]) for r in results}
    print(f"\nhttp-api overhead over the floor: {(work_of['http_api'] - work_of['floor']) / pages * 1000:.2f} ms per page; "
          f"python requests: {(work_of['python_requests'] - work_of['floor']) / pages * 1000:.2f} ms per page")


if __name__ == "__main__":
    main()
