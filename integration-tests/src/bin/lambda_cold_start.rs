//! Cold-start proxy of a Lambda function binary: from process start to its first
//! `GET /2018-06-01/runtime/invocation/next` on the Runtime API test server.
//!
//! Usage: `lambda_cold_start <bootstrap> [runs]` (default 20 runs). Prints every run and
//! the median, min and max in milliseconds; the last line is JSON.

use std::process::Stdio;
use std::time::{Duration, Instant};

use integration_tests::runtime_api::RuntimeApiServer;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: lambda_cold_start <bootstrap> [runs]"))?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let server = RuntimeApiServer::start().await;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&bootstrap)
            .env_clear()
            .envs(server.lambda_env("cold-start", 512))
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        if !server.wait_next_calls(1, Duration::from_secs(10)).await {
            anyhow::bail!("run {i}: no /invocation/next within 10 s");
        }
        let first = server.next_calls()[0];
        let ms = (first - started).as_secs_f64() * 1000.0;
        println!("run {:2}: {ms:.2} ms", i + 1);
        samples.push(ms);
        child.kill().await?;
    }
    samples.sort_by(f64::total_cmp);
    let median = if samples.len() % 2 == 1 {
        samples[samples.len() / 2]
    } else {
        (samples[samples.len() / 2 - 1] + samples[samples.len() / 2]) / 2.0
    };
    let (min, max) = (samples[0], samples[samples.len() - 1]);
    println!("median {median:.2} ms, min {min:.2} ms, max {max:.2} ms over {runs} runs");
    println!(
        "{}",
        serde_json::json!({"runs": runs, "median_ms": median, "min_ms": min, "max_ms": max})
    );
    Ok(())
}
