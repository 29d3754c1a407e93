//! `local-s3`: run the local S3 server (optionally behind the fault proxy)
//! until SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use local_s3::{ACCESS_KEY, FaultConfig, FaultProxy, LocalS3, LocalS3Error, REGION, SECRET_KEY};

/// A local S3-compatible server (s3s-fs) on 127.0.0.1, path-style, SigV4 with
/// fixed local credentials.
#[derive(Debug, Parser)]
#[command(name = "local-s3", version)]
struct Args {
    /// Directory holding the data (buckets are its subdirectories); created if missing.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,

    /// Port to listen on, on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 9000)]
    port: u16,

    /// Bucket to create at start (repeatable; existing buckets are kept).
    #[arg(long = "bucket", value_name = "NAME")]
    buckets: Vec<String>,

    /// Probability per request of answering 503 SlowDown (puts a fault proxy on --port).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_rate)]
    fault_slow_down_rate: f64,

    /// Probability per request of dropping the connection without a response.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_rate)]
    fault_reset_rate: f64,

    /// Seed of the fault proxy's RNG.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fault_seed: u64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("not a number: {e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a probability between 0 and 1"))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("local-s3: error: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("local-s3: error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), LocalS3Error> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let faulty = args.fault_slow_down_rate > 0.0 || args.fault_reset_rate > 0.0;

    // With faults, the server takes a free port and the proxy takes --port.
    let s3_addr = if faulty {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    } else {
        listen
    };
    let s3 = LocalS3::start_on(&args.root, s3_addr).await?;
    for bucket in &args.buckets {
        s3.create_bucket(bucket)?;
    }

    let proxy = if faulty {
        let config = FaultConfig {
            slow_down_rate: args.fault_slow_down_rate,
            reset_rate: args.fault_reset_rate,
            fail_all: false,
            seed: args.fault_seed,
            lose_reply_once: None,
            lose_complete_reply_once: false,
            answer_once: None,
            hang: None,
            throttle: None,
        };
        Some(FaultProxy::start_on(s3.addr(), config, listen).await?)
    } else {
        None
    };

    let endpoint = proxy
        .as_ref()
        .map_or_else(|| s3.endpoint(), FaultProxy::endpoint);
    let faults = if faulty {
        format!(
            ", faults: slow-down {} reset {} seed {} in front of {}",
            args.fault_slow_down_rate,
            args.fault_reset_rate,
            args.fault_seed,
            s3.endpoint()
        )
    } else {
        String::new()
    };
    let stop = StopSignals::register();
    println!(
        "local-s3 listening on {endpoint} (root {}, access key {ACCESS_KEY}, secret key {SECRET_KEY}, region {REGION}{faults})",
        s3.root().display()
    );

    stop.wait().await;

    if let Some(proxy) = proxy {
        proxy.shutdown().await;
    }
    s3.shutdown().await;
    Ok(())
}

/// SIGTERM and SIGINT, registered before the startup line is printed: a
/// supervisor (or test) that signals as soon as it reads that line must stop
/// the server, not kill it with the default disposition.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watch = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(err) => {
                    eprintln!("local-s3: warning: cannot listen for {name} ({err})");
                    None
                }
            };
            Self {
                term: watch(SignalKind::terminate(), "SIGTERM"),
                int: watch(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            async fn recv(stream: Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(self.term) => {}
                _ = recv(self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
