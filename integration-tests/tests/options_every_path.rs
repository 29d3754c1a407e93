//! Every extract option is read, with the same name and meaning, from every input path:
//! CLI flags (`extract`), the `CONNECTOR_*` environment and flags of the Fargate
//! container, a Lambda event's `options`, a daemon job's `extract` table, and the flags
//! of Glue's `extract-partition` (what a job's `--extract_args` carries). The table
//! below must cover every option `ExtractSettings` has: a new option that some path does
//! not read fails here.

use std::path::Path;

use clap::FromArgMatches;
use connector_sdk::{ConnectorManifest, ExtractOptions, OutputLocation};
use orders_demo::OrdersDemo;
use runner_layer::ExtractSettings;
use serde_json::{Value, json};

/// (option name, value as text on the command line / in the environment, value in JSON
/// and TOML). Every value differs from the default, so a path that drops it is caught.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("codec", "snappy", json!("snappy")),
        ("zstd_level", "7", json!(7)),
        ("row_group_rows", "1000", json!(1000)),
        ("dictionary", "never", json!("never")),
        ("target_file_size", "48KiB", json!("48KiB")),
        ("part_size", "16MiB", json!("16MiB")),
        ("max_buffered_parts", "3", json!(3)),
        ("concurrency", "5", json!(5)),
        ("max_runtime_secs", "90.5", json!(90.5)),
        (
            "schema_evolution",
            "discard_columns",
            json!("discard_columns"),
        ),
        ("write_disposition", "replace", json!("replace")),
        ("commit_interval_secs", "60", json!(60)),
        ("commit_interval_size", "256MiB", json!("256MiB")),
        (
            "sse_kms_key_id",
            "alias/connector-output",
            json!("alias/connector-output"),
        ),
        (
            "expected_bucket_owner",
            "123456789012",
            json!("123456789012"),
        ),
        (
            "allowed_endpoints",
            "db.internal:5432",
            json!(["db.internal:5432"]),
        ),
        (
            "governance_policy",
            "/etc/connector/policy.toml",
            json!("/etc/connector/policy.toml"),
        ),
    ]
}

fn output() -> OutputLocation {
    "s3://bucket/prefix".parse().unwrap()
}

fn flag(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

/// The settings of the subcommand `args` (after the binary name) of the real CLI.
fn from_cli(args: &[&str]) -> ExtractSettings {
    let matches = connector_cli::command()
        .try_get_matches_from(std::iter::once("bin").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let (_, sub) = matches.subcommand().expect("a subcommand");
    ExtractSettings::from_arg_matches(sub).expect("settings")
}

fn from_lambda_event(name: &str, value: &Value) -> ExtractSettings {
    let event = json!({
        "config": {}, "output": "s3://bucket/prefix", "stream": "orders",
        "options": {name: value},
    });
    lambda_runner::RawEvent::from_slice(event.to_string().as_bytes())
        .into_request()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .options
        .expect("options")
}

/// A daemon config with one job whose `extract` table sets `name = value` (line 6).
fn load_daemon_toml(name: &str, value: &Value) -> Result<ec2_runner::LoadedConfig, String> {
    let toml_value = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let text = format!(
        "[[jobs]]\nname = \"j\"\noutput = \"s3://bucket/prefix\"\nevery = \"1h\"\nconfig = {{}}\nextract = {{ {name} = {toml_value} }}\n"
    );
    let manifest = ConnectorManifest::of::<OrdersDemo>().unwrap();
    ec2_runner::LoadedConfig::parse::<OrdersDemo>(
        Path::new("/etc/orders-demo/daemon.toml"),
        &text,
        &manifest,
    )
    .map_err(|e| e.to_string())
}

fn from_daemon_toml(name: &str, value: &Value) -> ExtractSettings {
    let loaded = load_daemon_toml(name, value).unwrap_or_else(|e| panic!("{name}: {e}"));
    loaded.jobs[0].settings.clone()
}

#[test]
fn the_table_covers_every_option() {
    let mut names: Vec<String> = cases().iter().map(|c| c.0.to_string()).collect();
    names.sort();
    let mut all = ExtractSettings::names();
    all.sort();
    assert_eq!(names, all, "every option needs a row in cases()");
}

#[test]
fn every_path_reads_every_option_the_same_way() {
    for (name, text, value) in cases() {
        let expected: ExtractSettings =
            serde_json::from_value(json!({name: value})).expect("valid JSON setting");
        assert_ne!(expected, ExtractSettings::default(), "{name}");
        // Each value changes what the core is given (or the deadline).
        let resolved = expected.resolve(output()).unwrap();
        assert!(
            resolved != ExtractOptions::new(output())
                || expected.deadline(std::time::Instant::now()).is_some(),
            "{name} changes nothing"
        );
        let f = flag(name);
        let cli = from_cli(&[
            "extract", "--config", "c.json", "--output", "s3://b/p", &f, text,
        ]);
        assert_eq!(cli, expected, "CLI extract {f}");
        let container = from_cli(&["container", &f, text]);
        assert_eq!(container, expected, "container {f}");
        let glue = from_cli(&[
            "extract-partition",
            "--config",
            "c.json",
            "--output",
            "s3://b/p",
            "--plan",
            "-",
            "--partition",
            "p",
            &f,
            text,
        ]);
        assert_eq!(glue, expected, "Glue extract-partition {f}");
        assert_eq!(
            from_lambda_event(name, &value),
            expected,
            "Lambda event {name}"
        );
        assert_eq!(
            from_daemon_toml(name, &value),
            expected,
            "daemon TOML {name}"
        );
    }
}

/// ECS passes the container's options as environment variables: each option's flag
/// reads `CONNECTOR_<NAME>` (clap reads the variable; no variable is set here, the
/// process environment is shared by the tests).
#[test]
fn the_container_reads_every_option_from_its_environment_variable() {
    let cmd = connector_cli::command();
    let container = cmd
        .find_subcommand("container")
        .expect("container subcommand");
    for (name, _, _) in cases() {
        let arg = container
            .get_arguments()
            .find(|a| a.get_long() == Some(&name.replace('_', "-")))
            .unwrap_or_else(|| panic!("container has no --{name}"));
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        assert_eq!(
            env.as_deref(),
            Some(format!("CONNECTOR_{}", name.to_uppercase()).as_str()),
            "{name}"
        );
    }
}

/// An invalid value is refused on every path with the option named.
#[test]
fn every_path_names_the_option_it_refuses() {
    for (name, bad) in [
        ("zstd_level", json!(23)),
        ("row_group_rows", json!(0)),
        ("part_size", json!("1MiB")),
        ("target_file_size", json!("1B")),
        ("max_buffered_parts", json!(0)),
        ("concurrency", json!(0)),
        ("max_runtime_secs", json!(-1.0)),
        ("commit_interval_secs", json!(0)),
        ("commit_interval_secs", json!(604_801)),
        ("commit_interval_size", json!("512KiB")),
        ("commit_interval_size", json!("1025GiB")),
        ("expected_bucket_owner", json!("12345")),
        ("sse_kms_key_id", json!("my key")),
        ("allowed_endpoints", json!(["db.internal:0"])),
        ("allowed_endpoints", json!(["no-port"])),
    ] {
        let settings = from_lambda_event(name, &bad);
        let e = settings.resolve(output()).unwrap_err().to_string();
        assert!(e.contains(name), "Lambda {name}: {e}");
        let e = load_daemon_toml(name, &bad).unwrap_err();
        assert!(e.contains(name) && e.contains(":6:"), "daemon {name}: {e}");
    }
    // Unknown names and malformed values fail at parse time on every path.
    for bad in [
        json!({"part_mib": 8}),
        json!({"part_size": "8MB"}),
        json!({"codec": "gzip"}),
        json!({"schema_evolution": "loose"}),
        json!({"write_disposition": "upsert"}),
    ] {
        let event = json!({"config": {}, "output": "s3://b/p", "stream": "orders", "options": bad});
        assert!(
            lambda_runner::RawEvent::from_slice(event.to_string().as_bytes())
                .into_request()
                .is_err(),
            "{bad}"
        );
    }
    for args in [
        [
            "extract",
            "--config",
            "c",
            "--output",
            "s3://b/p",
            "--part-size",
            "8MB",
        ],
        [
            "extract", "--config", "c", "--output", "s3://b/p", "--codec", "gzip",
        ],
        [
            "extract",
            "--config",
            "c",
            "--output",
            "s3://b/p",
            "--part-mib",
            "8",
        ],
    ] {
        let e = connector_cli::command()
            .try_get_matches_from(std::iter::once("bin").chain(args))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
}
