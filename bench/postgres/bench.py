"""The Postgres extract contenders under the rules of bench/fair.py: interleaved rounds,
work time apart from start-up, every output's rows, codec and column types checked against
the connector's. Called by run.sh once the table, the server and the local S3 are up.

Usage: bench.py ROUNDS ROWS CONTENDERS...   (environment: WORK, TARGET, PY, CONN, ENDPOINT,
PSQL_ARGS, CONCURRENCY)
"""
import os
import shlex
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import fair  # noqa: E402


def main():
    rounds, rows, names = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    work, target, py = Path(os.environ["WORK"]), os.environ["TARGET"], os.environ["PY"]
    conn, endpoint = os.environ["CONN"], os.environ["ENDPOINT"]
    psql = shlex.split(os.environ["PSQL_ARGS"])
    n = os.environ.get("CONCURRENCY", "2")
    s3 = work / "s3" / "bench"

    def dlt(backend):
        return fair.Contender(
            f"dlt_{backend}",
            lambda r: [py, os.path.join(HERE, "dlt_run.py"), conn, "lineitem", endpoint,
                       f"s3://bench/dlt-{backend}-{r}", backend, n],
            lambda r: s3 / f"dlt-{backend}-{r}",
            extra_columns=("_dlt_load_id", "_dlt_id"),
            parallelism=f"one sql_table reader; normalize and load with {n} workers",
        )

    all_contenders = {
        "copy_floor": fair.Contender(
            "copy_floor",
            lambda r: ["bash", "-c", shlex.join(psql + ["-c", "COPY (SELECT * FROM lineitem) TO STDOUT (FORMAT binary)"]) + " >/dev/null"],
            lambda r: None,
            parallelism="one COPY, discarded (the floor: PostgreSQL's own cost)",
        ),
        "postgres_connector": fair.Contender(
            "postgres_connector",
            lambda r: [os.path.join(target, "postgres-connector"), "extract", "--config", str(work / "connector.json"),
                       "--output", f"s3://bench/pc-{r}", "--concurrency", n, "--codec", "zstd", "--zstd-level", "1"],
            lambda r: s3 / f"pc-{r}",
            parallelism=f"{n} partitions of l_orderkey, --concurrency {n}",
        ),
        "connectorx_pyarrow": fair.Contender(
            "connectorx_pyarrow",
            lambda r: [py, os.path.join(HERE, "cx_pyarrow.py"), conn, "lineitem", "l_orderkey", endpoint,
                       f"bench/cx-{r}", n],
            lambda r: s3 / f"cx-{r}",
            parallelism=f"{n} ranges of l_orderkey, each read and written in its own thread",
        ),
        "dlt_pyarrow": dlt("pyarrow"),
        "dlt_connectorx": dlt("connectorx"),
        "dlt_default": dlt("default"),
    }
    unknown = [x for x in names if x not in all_contenders]
    if unknown:
        sys.exit(f"unknown contenders: {unknown}; known: {list(all_contenders)}")
    results = fair.run_rounds([all_contenders[x] for x in names], rounds, dict(os.environ))
    print(f"\n### lineitem, {rows:,} rows, {rounds} interleaved rounds\n")
    print(fair.table(results, "postgres_connector", rows))


if __name__ == "__main__":
    main()
