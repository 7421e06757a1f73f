//! A full disk is visible: each failed append is logged (rate-limited) with the OS error and
//! the file, `/readyz` answers 503 while appends fail, and the node becomes ready again by
//! itself once an append succeeds. Nothing acknowledged is lost on the way.
//!
//! The node's data directory is a small tmpfs of its own (the test runs as root, as CI
//! does), filled with a ballast file until the disk is full.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use herald_integration_tests::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A fresh tmpfs of `size`; `None` (the test is skipped, saying so) where mounting is
    /// not permitted because the test does not run as root. As root it must work.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "herald-test"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        match (mounted, root) {
            (true, _) => Some(SmallDisk { dir }),
            (false, false) => {
                eprintln!("SKIPPED: mounting a tmpfs needs root; run this test as root (CI does)");
                None
            }
            (false, true) => panic!("mounting a tmpfs for the disk-full test failed as root"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a ballast file until a write fails; returns the file.
    fn fill(&self) -> PathBuf {
        let ballast = self.path().join("ballast");
        let status = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", ballast.display()))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("dd runs");
        assert!(!status.success(), "dd stops only when the disk is full");
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_is_logged_makes_the_node_unready_and_heals_by_itself() {
    let Some(disk) = SmallDisk::mount("16m") else {
        return;
    };
    let data_dir = disk.path().join("node");
    let mut node = Node::start_in(&data_dir, &[]);
    node.accept(&stock_added("sku-disk", 1));
    assert_eq!(node.get("/readyz").status, 200);

    let ballast = disk.fill();
    // Events with some padding, so each needs room the disk no longer has.
    let padded = |n: usize| {
        let mut event = stock_added("sku-disk", 1);
        event["pad"] = serde_json::Value::from("p".repeat(8192 + n));
        event
    };
    let mut refused = 0;
    for n in 0..20 {
        let reply = node.publish(&padded(n));
        match reply.status {
            503 => refused += 1,
            202 => {} // Room in the segment's last page; the next ones will not fit.
            other => panic!(
                "expected 503 or 202 with the disk full, saw {other}: {}",
                reply.json
            ),
        }
    }
    assert!(refused > 0, "no append failed with the disk full");

    let ready = node.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.json);
    assert_eq!(
        ready.json["type"],
        "https://herald.dev/problems/log-unwritable"
    );
    let detail = ready.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("No space left on device"), "{detail}");
    assert!(
        detail.contains(&data_dir.display().to_string()),
        "names the file: {detail}"
    );

    // Logged with the OS error and the file, but not once per failure.
    let failures_logged = node
        .logs()
        .lines()
        .filter(|line| line.contains("cannot append to the event log"))
        .count();
    assert!(failures_logged >= 1, "{}", node.logs_tail(30));
    assert!(
        failures_logged < refused,
        "{failures_logged} lines for {refused} failures: not rate-limited"
    );
    let logs = node.logs();
    assert!(
        logs.contains("No space left on device"),
        "{}",
        node.logs_tail(30)
    );

    // Free the disk: the node is ready again by itself, with no client sending to it (an
    // orchestrator stops routing to a node that is not ready), then takes events.
    std::fs::remove_file(ballast).expect("remove ballast");
    eventually("ready again", || node.get("/readyz").status == 200);
    assert!(
        node.logs().contains("succeeds again; the node is ready"),
        "{}",
        node.logs_tail(20)
    );
    let accepted_after = node.accept(&padded(100));

    // Every acknowledged event survives a restart.
    node.stop();
    let restarted = Node::start_in(&data_dir, &[]);
    let stream = restarted.read_stream("inventory");
    assert_eq!(
        stream.last().and_then(|event| event["sequence"].as_u64()),
        Some(accepted_after),
        "the last acknowledged event is the stream's last"
    );
    drop(restarted);
    std::thread::sleep(Duration::from_millis(100));
}
