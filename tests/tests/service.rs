//! `docs/envhub.service`, the systemd unit of the README's install section:
//! it passes `systemd-analyze verify` and keeps its promises (a dynamic
//! user, the database in the state directory, restart on failure, the
//! hardening of a network daemon).

use std::path::Path;
use std::process::Command;

use envhub_tests::{tools, Shell};

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/envhub.service");
    std::fs::read_to_string(path).expect("read docs/envhub.service")
}

/// The value of every `Key=` line of the unit.
fn values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn unit_keeps_its_promises() {
    let unit = unit();
    let one = |key: &str| -> String {
        let v = values(&unit, key);
        assert_eq!(v.len(), 1, "{key}= should appear once: {v:?}");
        v[0].clone()
    };
    let exec = one("ExecStart");
    assert!(
        exec.starts_with("/usr/local/bin/envhub serve --bind 0.0.0.0:8080 --db %S/envhub/"),
        "{exec}"
    );
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "envhub"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("KillSignal", "SIGTERM"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert!(values(&unit, "SystemCallFilter").contains(&"@system-service".to_string()));
}

#[test]
fn unit_verifies() {
    if !tools::require(
        "unit_verifies",
        "systemd-analyze",
        &["--version"],
        "systemd",
    ) {
        return;
    }
    // verify checks that ExecStart's program exists: point it at the
    // binary this workspace built, in a copy of the unit.
    let envhub = Shell::Host.binary();
    let dir = std::env::temp_dir().join(format!("envhub-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("envhub.service");
    let text = unit().replace("/usr/local/bin/envhub", &envhub.display().to_string());
    std::fs::write(&copy, text).expect("write the copy");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // verify exits 0 for some warnings; none are expected from this unit.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("envhub.service"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");
}
