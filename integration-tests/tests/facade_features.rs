//! The facade's runner modes are cargo features: a connector built for one runner links
//! that runner's crate (and its dependencies) and no other. `cargo tree` resolves the
//! dependency graph of each feature alone, without compiling.

use std::process::Command;

/// Each runner feature, its crate, and a dependency only that runner brings.
const RUNNERS: [(&str, &str, Option<&str>); 4] = [
    ("lambda", "lambda-runner", Some("lambda_runtime")),
    ("fargate", "fargate-runner", None),
    ("ec2", "ec2-runner", Some("sd-notify")),
    ("glue", "glue-runner", None),
];

fn normal_dependencies(features: &str, default: bool) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "-p",
        "connector-cli",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--offline",
    ])
    .current_dir(integration_tests::workspace_root());
    if !default {
        cmd.args(["--no-default-features", "--features", features]);
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn each_runner_feature_links_only_its_runner() {
    for (feature, krate, _) in RUNNERS {
        let deps = normal_dependencies(feature, false);
        for (_, other, other_dep) in RUNNERS {
            let expected = other == krate;
            assert_eq!(
                deps.iter().any(|d| d == other),
                expected,
                "feature `{feature}`: {other} linked = {}",
                !expected
            );
            if let Some(dep) = other_dep {
                assert_eq!(
                    deps.iter().any(|d| d == dep),
                    expected,
                    "feature `{feature}`: {dep} (of {other}) linked = {}",
                    !expected
                );
            }
        }
    }
    // The default build has all four.
    let all = normal_dependencies("", true);
    for (_, krate, _) in RUNNERS {
        assert!(
            all.iter().any(|d| d == krate),
            "default build lacks {krate}"
        );
    }
}
