//! The template service (`templates/service`, README "Your own service") is its own
//! project outside the workspace: its tests run here, with cargo, as a team would run them,
//! so `cargo test --workspace` covers them too.

use std::process::Command;

use herald_integration_tests::workspace;

#[test]
fn the_template_service_builds_and_passes_its_own_tests() {
    let root = workspace();
    let manifest = root.join("templates").join("service").join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One target directory with the workspace, so Herald's crates are built once.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let output = Command::new(cargo)
        .args(["test", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo test --manifest-path {} failed (a changed dependency of the workspace? \
         then run `cargo update --workspace --manifest-path {}` and commit its Cargo.lock):\n{stdout}\n{stderr}",
        manifest.display(),
        manifest.display()
    );
    for test in [
        "loyalty_awards_a_delivered_order_and_refuses_an_overdraft",
        "a_delivered_order_earns_its_customer_a_point_once",
        "a_delivery_seen_before_its_order_still_earns_the_point",
        "points_are_redeemed_only_while_there_are_enough",
    ] {
        assert!(
            stdout.contains(&format!("test {test} ... ok")),
            "the template's test {test} did not pass:\n{stdout}"
        );
    }
}
