//! A real headless browser for the console tests: Debian's `chromium`, driven through
//! `chromedriver` (WebDriver) with fantoccini. `.ci/run` installs both packages; set
//! `CHROMEDRIVER` and `CHROMIUM` to use others.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Map, Value};

/// A chromedriver process on a free port, stopped when dropped.
pub struct Chromedriver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

/// The executable named by `variable`, else `fallback` if it exists, else on PATH.
fn tool(variable: &str, fallback: &str, install: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let fallback = Path::new(fallback);
    if fallback.exists() {
        return fallback.to_path_buf();
    }
    let name = fallback.file_name().unwrap_or_default();
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "{} not found: install it ({install}) or set {variable} (.ci/run installs it)",
                fallback.display()
            )
        })
}

impl Chromedriver {
    /// Starts chromedriver and waits until it answers.
    pub fn start() -> Self {
        let driver = tool(
            "CHROMEDRIVER",
            "/usr/bin/chromedriver",
            "apt-get install chromium-driver",
        );
        let port = crate::nats::free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", driver.display()));
        let driver = Self {
            child,
            port,
            _profile: tempfile::tempdir().expect("temp dir"),
        };
        let status = format!("{}/status", driver.url());
        assert!(
            crate::poll(Duration::from_secs(30), || reqwest::blocking::get(&status)
                .is_ok()),
            "chromedriver did not answer in 30 s"
        );
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new headless chromium session, its window `width` x `height`.
    pub async fn session(&self, width: u32, height: u32) -> Client {
        let chromium = tool("CHROMIUM", "/usr/bin/chromium", "apt-get install chromium");
        // As root in a container: no sandbox. The machine's network is closed, so
        // chromium's own background traffic is turned off.
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", self._profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let mut capabilities = Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": chromium, "args": args}),
        );
        capabilities.insert("browserName".to_owned(), Value::from("chrome"));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .unwrap_or_else(|error| panic!("cannot open a chromium session: {error}"))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the tests leave screenshots: `$CARGO_TARGET_DIR/console-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace().join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}
