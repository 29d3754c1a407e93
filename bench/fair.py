"""The rules every benchmark here follows (bench/sdk, bench/postgres).

- Rounds, interleaved: every contender runs once per round (A B C, A B C, A B C; at least
  three rounds), so a change in the machine's load spreads over all of them. The table
  gives the median and the spread (min-max) over the rounds.
- Work, not start-up: each contender reports the seconds of its work (from before it
  connects or generates to after its last file is closed) as a JSON line with "work_s";
  our binaries report it in their run report (duration_ms). The harness measures the
  process (wall, CPU user+sys, peak RSS) and shows start-up (wall - work) separately.
- Checked output: after every run the harness reads what the contender wrote (the Parquet
  footers in the local S3 server's directory) with pyarrow: files, rows, bytes, codecs
  and each column's logical type. A contender whose rows, codec or column types differ
  from the reference contender's is flagged in the table with what differs; it is never
  silently compared.
"""
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pyarrow.parquet as pq


@dataclass
class Contender:
    """One contender: how to run round `r` and where its files land."""

    name: str
    command: Callable[[int], list]
    # The directory holding round r's Parquet files (None: writes nothing to check).
    output: Callable[[int], Optional[Path]]
    # Columns the contender adds to the data (e.g. dlt's _dlt_id), left out of the check.
    extra_columns: tuple = ()
    # How its parallelism compares with ours, for the table's notes.
    parallelism: str = ""


@dataclass
class Run:
    wall_s: float
    work_s: float
    cpu_s: float
    rss_mib: float
    output: Optional[dict]
    error: Optional[str] = None


@dataclass
class Result:
    contender: Contender
    runs: list = field(default_factory=list)


def measured(cmd, env):
    """Run `cmd` through a small wrapper process that reports the peak RSS of `cmd` and its
    children alone; return (stdout, stderr, status, wall s, CPU s, peak RSS MiB). CPU is
    user + sys of everything the wrapper waited for (the wrapper's own start-up, a few
    hundredths of a second, included)."""
    wrapper = (
        "import resource,subprocess,sys;"
        "p=subprocess.run(sys.argv[1:]);"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "sys.stderr.write('\\n@@rss '+str(r.ru_maxrss)+'\\n');"
        "sys.exit(p.returncode)"
    )
    before = os.times()
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", wrapper] + cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    rss_kib, lines = 0, []
    for line in p.stderr.splitlines():
        if line.startswith("@@rss "):
            rss_kib = int(line.split()[1])
        else:
            lines.append(line)
    return p.stdout, "\n".join(lines), p.returncode, wall, cpu, rss_kib / 1024


def work_seconds(stdout):
    """The work time a contender printed: "work_s" in a JSON line, or a run report's
    duration_ms (our binaries)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            if "work_s" in value:
                return float(value["work_s"])
            if "duration_ms" in value:
                return value["duration_ms"] / 1000.0
    return None


def inspect(directory):
    """What a contender wrote: the Parquet files under `directory` (a Delta log's
    checkpoints left out), their rows, bytes, codecs and column types."""
    files = sorted(
        p for p in Path(directory).rglob("*.parquet")
        if "_delta_log" not in p.parts and not any(part.startswith("_dlt") for part in p.parts)
    )
    rows, size, codecs, types = 0, 0, set(), {}
    for f in files:
        meta = pq.ParquetFile(f).metadata
        rows += meta.num_rows
        size += f.stat().st_size
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                codecs.add(meta.row_group(g).column(c).compression)
        for column in pq.read_schema(f):
            types.setdefault(column.name, str(column.type))
    return {"files": len(files), "rows": rows, "bytes": size, "codecs": sorted(codecs), "types": types}


def differences(reference, output, extra_columns=()):
    """What differs between a contender's output and the reference's (empty: nothing)."""
    if output is None or reference is None:
        return []
    diffs = []
    if output["rows"] != reference["rows"]:
        diffs.append(f"rows {output['rows']} vs {reference['rows']}")
    if output["codecs"] != reference["codecs"]:
        diffs.append(f"codec {'/'.join(output['codecs'])} vs {'/'.join(reference['codecs'])}")
    ours, theirs = reference["types"], {k: v for k, v in output["types"].items() if k not in extra_columns}
    for name in sorted(set(ours) | set(theirs)):
        if name not in theirs:
            diffs.append(f"no column {name}")
        elif name not in ours:
            diffs.append(f"extra column {name}")
        elif ours[name] != theirs[name]:
            diffs.append(f"{name}: {theirs[name]} vs {ours[name]}")
    return diffs


def run_rounds(contenders, rounds, env, log=sys.stderr):
    """Run every contender once per round, interleaved; return a Result per contender."""
    results = [Result(c) for c in contenders]
    for r in range(rounds):
        for result in results:
            c = result.contender
            out, err, status, wall, cpu, rss = measured(c.command(r), env)
            if status != 0:
                result.runs.append(Run(wall, wall, cpu, rss, None, error=err.strip()[-400:] or f"exit {status}"))
                print(f"round {r + 1}: {c.name} FAILED: {err.strip()[-400:]}", file=log)
                continue
            work = work_seconds(out)
            directory = c.output(r)
            output = inspect(directory) if directory is not None else None
            result.runs.append(Run(wall, work if work is not None else wall, cpu, rss, output))
            print(f"round {r + 1}: {c.name} {wall:.2f}s wall, {result.runs[-1].work_s:.2f}s work", file=log)
    return results


def spread(values, fmt="{:.2f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def table(results, reference, rows):
    """The results table (markdown): medians and spreads, what each contender wrote, and a
    flag with what differs from `reference`'s output."""
    ref = next((r for r in results if r.contender.name == reference), None)
    ref_output = next((run.output for run in ref.runs if run.output), None) if ref else None
    lines = [
        "| contender | work s, median (min-max) | rows/s (median) | start-up s | CPU s | peak RSS MiB | files | MB | codec | output check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        ok = [run for run in result.runs if run.error is None]
        failed = len(result.runs) - len(ok)
        output = next((run.output for run in ok if run.output), None)
        work = [run.work_s for run in ok]
        rate = f"{rows / statistics.median(work):,.0f}" if work else "-"
        startup = spread([run.wall_s - run.work_s for run in ok])
        if output is None:
            files = size = codec = "-"
            check = "no files (not compared)" if ok else "failed"
        else:
            files, size = str(output["files"]), f"{output['bytes'] / 1e6:.1f}"
            codec = "/".join(output["codecs"])
            if result is ref:
                check = "reference"
            else:
                diffs = differences(ref_output, output, result.contender.extra_columns)
                check = "same rows, codec and types" if not diffs else "**differs**: " + "; ".join(diffs)
                if result.contender.extra_columns:
                    check += f" (plus its own columns {', '.join(result.contender.extra_columns)})"
        if failed:
            check += f"; {failed} run(s) failed"
        lines.append(
            f"| {result.contender.name} | {spread(work)} | {rate} | {startup} | {spread([r.cpu_s for r in ok])} "
            f"| {spread([r.rss_mib for r in ok], '{:.0f}')} | {files} | {size} | {codec} | {check} |"
        )
    notes = [f"- {r.contender.name}: {r.contender.parallelism}" for r in results if r.contender.parallelism]
    return "\n".join(lines + ([""] + notes if notes else []))
