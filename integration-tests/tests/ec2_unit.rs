//! The EC2 runner's systemd unit, checked with systemd's own tools: `systemd-analyze
//! verify` must be silent about unknown keys/sections, and `systemd-analyze security
//! --offline=yes` must rate the exposure at 2.5 or lower.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::{binary, workspace_root};

const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

/// The unit template rendered for `orders-demo` in a temp dir, with `ExecStart=` pointing
/// at the real built binary (verify checks that the command is executable).
fn rendered_unit(dir: &Path) -> PathBuf {
    let template = workspace_root().join("runners/ec2/connector@.service");
    let text = std::fs::read_to_string(&template).expect("unit template");
    assert!(
        text.contains("ExecStart=/usr/local/bin/%i daemon"),
        "the template's ExecStart changed; update this test"
    );
    let bin = binary("orders-demo", "orders-demo");
    let text = text.replace("/usr/local/bin/%i", &bin.display().to_string());
    let path = dir.join("connector@orders-demo.service");
    std::fs::write(&path, text).expect("write unit");
    path
}

fn analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = Command::new(SYSTEMD_ANALYZE)
        .args(args)
        .arg(unit)
        .current_dir(unit.parent().expect("dir"))
        .output()
        .expect("systemd-analyze runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn unit_verifies_without_unknown_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = rendered_unit(dir.path());
    let (ok, out) = analyze(&["verify", "--man=no"], &unit);
    assert!(ok, "systemd-analyze verify failed:\n{out}");
    for bad in [
        "Unknown key",
        "Unknown section",
        "Unknown lvalue",
        "Invalid",
        "Failed to parse",
    ] {
        assert!(
            !out.contains(bad),
            "systemd-analyze verify warns ({bad}):\n{out}"
        );
    }
    // The checker itself catches an unknown key (verify only warns, exit status 0).
    let text = std::fs::read_to_string(&unit).expect("read");
    let broken = dir.path().join("connector@broken.service");
    std::fs::write(
        &broken,
        text.replace("[Service]\n", "[Service]\nWatchDogSecs=1\n"),
    )
    .expect("write");
    let (_, out) = analyze(&["verify", "--man=no"], &broken);
    assert!(
        out.contains("Unknown key"),
        "expected an Unknown key warning:\n{out}"
    );
}

#[test]
fn unit_declares_the_required_service_settings() {
    let text = std::fs::read_to_string(workspace_root().join("runners/ec2/connector@.service"))
        .expect("unit template");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=%i",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "ExecStart=/usr/local/bin/%i daemon --config ${CREDENTIALS_DIRECTORY}/daemon.toml",
        "LoadCredential=daemon.toml:/etc/%i/daemon.toml",
        "ConfigurationDirectoryMode=0700",
    ] {
        assert!(text.contains(line), "unit lacks {line:?}");
    }
}

#[test]
fn unit_security_exposure_is_at_most_2_5() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = rendered_unit(dir.path());
    let (_, out) = analyze(&["security", "--offline=yes", "--no-pager"], &unit);
    // "→ Overall exposure level for connector@orders-demo.service: 1.2 OK 🙂"
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{out}"));
    let score: f64 = line
        .rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse the exposure from {line:?}"));
    eprintln!("{line}");
    assert!(score <= 2.5, "exposure {score} > 2.5:\n{out}");
}

/// `install.sh` (under `DESTDIR`) leaves the config root-only (0600 in a 0700 directory:
/// the service reads it as a systemd credential) and turns each `--credential NAME=FILE`
/// into `LoadCredential=NAME:FILE` in the instance's drop-in; a name that is not a file
/// name or a relative file is refused. Before, the config was installed world-readable.
#[test]
fn install_keeps_the_config_root_only_and_hands_secrets_over_as_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        "[[jobs]]\nname = \"j\"\noutput = \"s3://bucket/prefix\"\nevery = \"1h\"\nconfig = {}\n",
    )
    .unwrap();
    let install = |args: &[&str]| {
        Command::new("bash")
            .arg(workspace_root().join("runners/ec2/install.sh"))
            .arg(binary("orders-demo", "orders-demo"))
            .args(args)
            .env("DESTDIR", &root)
            .output()
            .expect("install.sh runs")
    };
    let out = install(&[
        config.to_str().unwrap(),
        "--credential",
        "pg=/etc/orders-demo/pg.password",
        "--credential=token=/etc/orders-demo/token",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let etc = root.join("etc/orders-demo");
    assert_eq!(mode(&etc), 0o700, "config directory");
    assert_eq!(mode(&etc.join("daemon.toml")), 0o600, "config file");
    assert_eq!(
        std::fs::read_to_string(etc.join("daemon.toml")).unwrap(),
        std::fs::read_to_string(&config).unwrap()
    );
    let dropin = std::fs::read_to_string(
        root.join("etc/systemd/system/connector@orders-demo.service.d/credentials.conf"),
    )
    .expect("the credentials drop-in");
    assert!(dropin.contains("[Service]\n"), "{dropin}");
    assert!(
        dropin.contains("LoadCredential=pg:/etc/orders-demo/pg.password\n")
            && dropin.contains("LoadCredential=token:/etc/orders-demo/token\n"),
        "{dropin}"
    );
    for (bad, needle) in [
        ("../pg=/etc/x", "file name"),
        ("pg=relative/file", "absolute path"),
        ("daemon.toml=/etc/x", "config's"),
    ] {
        let out = install(&[config.to_str().unwrap(), "--credential", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{bad}: {err}");
    }
}
