"""Glue job: extract one stream of a connector with its binary, fanned out over Spark.

Runs unchanged on AWS Glue 5 (Spark 3.5, Python 3.11) and on a local PySpark 3.5
(``spark-submit --master 'local[2,4]' connector_glue_job.py --connector_binary ...``).

    driver:    <binary> plan                 -> the run plan (partitions)
    executors: <binary> extract-partition    -> one task per partition: files, no commit
    driver:    <binary> commit               -> the dataset manifest, conditionally, once

A task that fails is retried by Spark (``spark.task.maxFailures``; locally ``local[N,F]``):
the retry re-extracts the partition into file names of its own attempt (``--attempt``,
Spark's task attempt id), and the commit lists only the files of the attempts whose
results the driver collected, so the committed dataset has no duplicates and a zombie
attempt (one Spark gave up on that still runs) can never overwrite a committed file. The
connector binary dies with the task's Python worker (``PR_SET_PDEATHSIG``), so a killed
task leaves no writer behind. A partition that fails on every attempt fails the job with
the connector's error, naming the partition; nothing is committed (files the run did write
are removed by ``<binary> gc``).

Arguments (``--name value``; through ``awsglue.utils.getResolvedOptions`` on Glue, the
same names through argparse elsewhere):

    --JOB_NAME          job name (Glue sets it)
    --connector_binary  the connector binary: a path, or a file name shipped with
                        --extra-files (it lands in the driver's working directory)
    --connector_config  the connector config file, found the same way
    --output            s3://bucket/prefix of the dataset
    --stream            stream to extract [default: the connector's only stream]
    --spark_partitions  Spark partitions [default: one per planned partition]
    --s3_endpoint       S3 endpoint URL (S3-compatible servers) [default: the AWS SDK's]
    --region            AWS region [default: the AWS SDK's]
    --extract_args      extract options for every step (plan, extract-partition, commit),
                        e.g. "--codec snappy --sse-kms-key-id alias/out"
    --pass_env          comma-separated names of environment variables copied from the
                        driver to the connector processes on the executors (for local
                        stand-ins; on Glue the job role gives executors credentials)

Exit codes: 0 committed; 2 bad arguments; otherwise the connector binary's code
(2 bad input, 3 source error, 4 sink error, 1 internal).
"""

import ctypes
import ctypes.util
import json
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

LOG = logging.getLogger("connector-glue-job")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

REQUIRED = ["JOB_NAME", "connector_binary", "connector_config", "output"]
OPTIONAL = [
    "stream",
    "spark_partitions",
    "s3_endpoint",
    "region",
    "extract_args",
    "pass_env",
]
# The marker executors put in a failed task's exception, found again on the driver.
FAILURE = re.compile(r"\[connector-glue\] partition `([^`]*)` failed \(exit (\d+)\): ([^\n]*)")
EXIT_USAGE = 2
EXIT_INTERNAL = 1


class JobError(Exception):
    """A failure the job reports as one line and an exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def parse_args(argv):
    """The job arguments, by name, with None for absent optional ones."""
    try:
        from awsglue.utils import getResolvedOptions  # noqa: PLC0415 (only on Glue)
    except ImportError:
        getResolvedOptions = None
    if getResolvedOptions is not None:
        # getResolvedOptions fails on absent names: ask only for the optional ones given.
        names = REQUIRED + [n for n in OPTIONAL if "--" + n in argv]
        args = getResolvedOptions(argv, names)
        return {n: args.get(n) for n in REQUIRED + OPTIONAL}
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="connector_glue_job.py",
        description="Extract one stream of a connector over Spark (Glue 5 job script).",
    )
    parser.add_argument("--JOB_NAME", default="connector-glue-job-local")
    parser.add_argument("--connector_binary", required=True)
    parser.add_argument("--connector_config", required=True)
    parser.add_argument("--output", required=True)
    for name in OPTIONAL:
        parser.add_argument("--" + name)
    return vars(parser.parse_args(argv[1:]))


def validate(args):
    """Check what can be checked without Spark or the network; one-line errors."""
    out = args["output"]
    if not out.startswith("s3://") or len(out) <= len("s3://"):
        raise JobError(
            f"--output {out!r} is not an S3 URL; use s3://bucket/prefix", EXIT_USAGE
        )
    n = args.get("spark_partitions")
    if n is not None:
        try:
            ok = int(n) >= 1
        except ValueError:
            ok = False
        if not ok:
            raise JobError(
                f"--spark_partitions {n!r} is not a positive integer; use e.g. 8 or omit it "
                "(one Spark partition per planned partition)",
                EXIT_USAGE,
            )
    if args.get("extract_args"):
        try:
            shlex.split(args["extract_args"])
        except ValueError as e:
            raise JobError(f"--extract_args cannot be split: {e}", EXIT_USAGE) from e
    for name in (args.get("pass_env") or "").split(","):
        if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise JobError(
                f"--pass_env names {name!r}, which is not an environment variable name; "
                "use comma-separated names like AWS_REGION,AWS_ENDPOINT_URL",
                EXIT_USAGE,
            )


def locate(arg, what):
    """A file given as a path, or by name in the working directory (--extra-files)."""
    for candidate in (arg, os.path.join(os.getcwd(), os.path.basename(arg))):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise JobError(
        f"--{what} {arg!r} not found: pass a path, or ship the file with --extra-files and "
        "pass its file name",
        EXIT_USAGE,
    )


def s3_flags(args):
    flags = []
    if args.get("s3_endpoint"):
        flags += ["--endpoint-url", args["s3_endpoint"]]
    if args.get("region"):
        flags += ["--region", args["region"]]
    return flags


def error_line(stderr):
    """The binary's one-line error (`error: ...` on stderr), or its last line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("error: "):
            return ln[len("error: ") :]
    return lines[-1] if lines else "(no output)"


PR_SET_PDEATHSIG = 1


def _libc_prctl():
    """libc's prctl, loaded in the parent (the child must not load libraries). Not kept
    in a module global: the driver's functions are pickled for the executors, and a ctypes
    function does not pickle."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(parent_pid):
    """In the child, before exec: SIGKILL when the parent (the task's Python worker) dies,
    so the binary of a killed Spark task cannot live on and write as a zombie attempt."""
    prctl = _libc_prctl()

    def set_death_signal():
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # The parent may have died before the death signal was set.
        if os.getppid() != parent_pid:
            os._exit(137)

    return set_death_signal


def run_binary(cmd, label, stdin=None, env=None, die_with_parent=False):
    """Run the connector binary; its log lines go to our stderr prefixed with `[label] `;
    returns (exit code, stdout, stderr). With `die_with_parent` (executor tasks, whose
    Python worker runs no other threads) the binary dies with this process; not on the
    driver, where Spark's threads run and a `preexec_fn` could deadlock the fork."""
    proc = subprocess.run(
        cmd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        preexec_fn=_die_with_parent(os.getpid()) if die_with_parent else None,
    )
    if proc.stderr:
        sys.stderr.write("".join(f"[{label}] {ln}\n" for ln in proc.stderr.splitlines()))
        sys.stderr.flush()
    return proc.returncode, proc.stdout, proc.stderr


def executable_copy(path):
    """SparkFiles may not keep the executable bit: make sure the binary can run."""
    if os.access(path, os.X_OK):
        return path
    try:
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path
    except OSError:
        copy = os.path.join(tempfile.mkdtemp(prefix="connector-bin-"), os.path.basename(path))
        shutil.copy(path, copy)
        os.chmod(copy, 0o755)
        return copy


def partition_runner(binary_name, config_name, plan_bc, flags, env_overrides):
    """The executor side: extract each partition id of a Spark partition, yield results."""

    def run(ids):
        from pyspark import SparkFiles, TaskContext  # noqa: PLC0415 (executor import)

        # Executors are separate Python workers: the driver's logging setup is not
        # theirs. Log to stderr (the executor log on Glue) in the driver's format.
        if not LOG.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            LOG.addHandler(handler)
            LOG.setLevel(logging.INFO)
            LOG.propagate = False

        binary = executable_copy(SparkFiles.get(binary_name))
        config = SparkFiles.get(config_name)
        env = dict(os.environ)
        env.update(env_overrides)
        # Unique in the Spark application: this attempt's file names are its own.
        context = TaskContext.get()
        attempt = context.taskAttemptId() if context is not None else 0
        for pid in ids:
            cmd = [binary, "extract-partition", "--config", config, "--plan", "-",
                   "--partition", pid, "--attempt", str(attempt)] + flags
            started = time.monotonic()
            code, out, err = run_binary(
                cmd,
                f"extract-partition {pid}",
                stdin=plan_bc.value,
                env=env,
                die_with_parent=True,
            )
            if code != 0:
                # Spark retries the task; after the last attempt the driver reports this.
                raise RuntimeError(
                    f"[connector-glue] partition `{pid}` failed (exit {code}): {error_line(err)}"
                )
            result = out.strip()
            json.loads(result)  # a truncated result fails the task, not the commit
            LOG.info("partition %s extracted in %.1fs", pid, time.monotonic() - started)
            yield result

    return run


def explain_failure(exc):
    """The connector's error behind a failed Spark job, as one line and an exit code."""
    text = str(exc)
    found = FAILURE.findall(text)
    attempts = re.search(r"failed (\d+) times", text)
    tries = f" on all {attempts.group(1)} attempts" if attempts else ""
    if found:
        pid, code, message = found[-1]
        return (
            f"partition `{pid}` failed{tries} (exit {code}): {message}; nothing was committed",
            int(code),
        )
    first = next((ln for ln in text.splitlines() if ln.strip()), repr(exc))
    return f"the Spark job failed: {first}; nothing was committed", EXIT_INTERNAL


def main(argv):
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=LOG_FORMAT,
    )
    # py4j logs every gateway connection at INFO; after the summary line that is noise
    # (and under spark-submit stderr is merged into stdout by Spark's PythonRunner).
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parse_args(argv)
    validate(args)
    binary = executable_copy(locate(args["connector_binary"], "connector_binary"))
    config = locate(args["connector_config"], "connector_config")
    flags = ["--output", args["output"]] + s3_flags(args)
    # Every step gets the extract options: plan and commit write too (the If-None-Match
    # probe, the table's log), under the same encryption and bucket-owner check.
    flags += shlex.split(args.get("extract_args") or "")
    work = tempfile.mkdtemp(prefix="connector-glue-job-")

    # 1. Plan on the driver, before Spark starts: bad config, bad output and an
    #    undeclared runner fail fast with the binary's own message.
    t0 = time.monotonic()
    cmd = [binary, "plan", "--config", config] + flags
    if args.get("stream"):
        cmd += ["--stream", args["stream"]]
    code, out, err = run_binary(cmd, "plan")
    if code != 0:
        raise JobError(f"plan failed (exit {code}): {error_line(err)}", code)
    plan_text = out.strip()
    plan = json.loads(plan_text)
    plan_path = os.path.join(work, "plan.json")
    with open(plan_path, "w", encoding="utf-8") as f:
        f.write(plan_text)
    ids = [w["partition"]["id"] for w in plan["work"] if not w.get("done")]
    plan_secs = time.monotonic() - t0
    LOG.info(
        "run %s of stream %s: %d partitions to extract (planned in %.2fs)",
        plan["run_id"], plan["stream"]["name"], len(ids), plan_secs,
    )

    # 2. Fan the partitions out: one task per Spark partition, the binary on every
    #    executor through SparkContext.addFile / SparkFiles.get.
    from pyspark.sql import SparkSession  # noqa: PLC0415 (after the cheap checks)

    spark = SparkSession.builder.appName(args["JOB_NAME"]).getOrCreate()
    sc = spark.sparkContext
    job = None
    try:
        from awsglue.context import GlueContext  # noqa: PLC0415
        from awsglue.job import Job  # noqa: PLC0415

        job = Job(GlueContext(sc))
        job.init(args["JOB_NAME"], {k: v for k, v in args.items() if v is not None})
    except ImportError:
        pass
    sc.addFile(binary)
    sc.addFile(config)
    n = int(args["spark_partitions"]) if args.get("spark_partitions") else max(1, len(ids))
    extract_flags = flags
    env_overrides = {
        name: os.environ[name]
        for name in (args.get("pass_env") or "").split(",")
        if name and name in os.environ
    }
    # Spark gives each task spark.task.cpus cores: the binary's async runtime uses as
    # many worker threads (unless TOKIO_WORKER_THREADS is set for it).
    env_overrides.setdefault(
        "TOKIO_WORKER_THREADS",
        os.environ.get("TOKIO_WORKER_THREADS") or sc.getConf().get("spark.task.cpus", "1"),
    )
    runner = partition_runner(
        os.path.basename(binary), os.path.basename(config), sc.broadcast(plan_text),
        extract_flags, env_overrides,
    )
    t1 = time.monotonic()
    try:
        results = sc.parallelize(ids, n).mapPartitions(runner).collect()
    except Exception as e:  # noqa: BLE001 (Py4JJavaError and friends)
        message, code = explain_failure(e)
        raise JobError(message, code) from None
    extract_secs = time.monotonic() - t1

    # 3. Commit once, on the driver.
    t2 = time.monotonic()
    results_path = os.path.join(work, "results.json")
    with open(results_path, "w", encoding="utf-8") as f:
        f.write("[" + ",".join(results) + "]")
    cmd = [binary, "commit", "--config", config, "--plan", plan_path,
           "--results", results_path] + flags
    code, out, err = run_binary(cmd, "commit")
    if code != 0:
        raise JobError(f"commit failed (exit {code}): {error_line(err)}", code)
    report = json.loads(out.strip().splitlines()[-1])
    commit_secs = time.monotonic() - t2
    timings = {
        "plan_secs": round(plan_secs, 3),
        # Time the binary spent extracting, summed over partitions (its own clock).
        "partition_secs": round(sum(json.loads(r)["elapsed_ms"] for r in results) / 1000, 3),
        "extract_secs": round(extract_secs, 3),
        "commit_secs": round(commit_secs, 3),
        "partitions": len(ids),
        "spark_partitions": n,
    }
    LOG.info(
        "committed run %s: status %s, sequence %s, %s rows in %s files; %s",
        report.get("run_id"), report.get("status"), report.get("sequence"),
        report.get("rows"), report.get("files"), json.dumps(timings),
    )
    print(json.dumps({"report": report, "timings": timings}), flush=True)
    if job is not None:
        job.commit()
    spark.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except JobError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.code)
