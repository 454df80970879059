//! Runs the real `kuvert` binary: its own data directory, a config file, a free port, JSON
//! logs read to learn the address it listens on. Tests can stop it with SIGTERM, kill it
//! with SIGKILL and start it again on the same data.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct ServerOptions {
    /// Path of the kuvert binary (`env!("CARGO_BIN_EXE_kuvert")` in the binary's tests).
    pub bin: PathBuf,
    /// TOML appended to the generated config file.
    pub extra_config: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            extra_config: String::new(),
            args: vec![],
            env: vec![],
        }
    }
    pub fn config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
}

pub struct KuvertServer {
    opts: ServerOptions,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub base_url: String,
    /// Addresses of the SMTP listeners by kind (`submission`, `submission_tls`).
    pub smtp: std::collections::HashMap<String, std::net::SocketAddr>,
    /// What the server printed on standard output (the `--dev` banner).
    pub stdout: String,
}

impl KuvertServer {
    pub fn start(opts: ServerOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Free ports for every listener, unless the test sets them.
        let smtp = if opts.extra_config.contains("[smtp]") {
            ""
        } else {
            "[smtp]\nsubmission_listen = \"127.0.0.1:0\"\nsubmission_tls_listen = \"127.0.0.1:0\"\ninbound_listen = \"127.0.0.1:0\"\n"
        };
        std::fs::write(
            dir.path().join("kuvert.toml"),
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n{smtp}{}",
                opts.extra_config
            ),
        )
        .expect("config");
        let mut s = Self {
            opts,
            dir,
            child: None,
            base_url: String::new(),
            smtp: Default::default(),
            stdout: String::new(),
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("kuvert.toml")
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.opts.bin);
        cmd.arg("serve")
            .args(&self.opts.args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.config_path())
            .arg("--log-format")
            .arg("json")
            .env("KUVERT_LOG", "info")
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start kuvert");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            let mut smtp = std::collections::HashMap::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let addr = v["fields"]["addr"]
                        .as_str()
                        .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                    if v["fields"]["message"] == "smtp listening"
                        && let (Some(kind), Some(addr)) = (v["fields"]["kind"].as_str(), addr)
                    {
                        smtp.insert(kind.to_owned(), addr);
                    }
                    // The SMTP listeners start first: when HTTP listens, all are known.
                    if v["fields"]["message"] == "http listening"
                        && let Some(addr) = addr
                    {
                        let _ = tx.send(Ok((addr, std::mem::take(&mut smtp))));
                        sent = true;
                    }
                }
                eprintln!("[kuvert] {line}");
            }
            if !sent {
                let _ = tx.send(Err("kuvert exited before listening".to_owned()));
            }
        });
        let (addr, smtp) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("kuvert starts within 60 s")
            .expect("kuvert listening");
        self.base_url = format!("http://{addr}");
        self.smtp = smtp;
        let mut stdout = child.stdout.take().expect("stdout");
        let (otx, orx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                let _ = otx.send(text.clone());
            }
        });
        // `--dev` prints its banner right after it starts listening: wait for all of it.
        if self.opts.args.iter().any(|a| a == "--dev") {
            while let Ok(text) = orx.recv_timeout(Duration::from_secs(10)) {
                self.stdout = text;
                if self.stdout.contains("/v1/events") {
                    break;
                }
            }
        }
        self.child = Some(child);
    }

    /// The API key the `--dev` banner showed.
    pub fn dev_key(&self) -> String {
        self.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("API key:"))
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|| panic!("the --dev banner shows the API key:\n{}", self.stdout))
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// SIGKILL: no chance to flush or clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().ok()?.code()
    }

    /// Starts again on the same data directory and config (on a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `kuvert ARGS` on this server's data directory and config, as an operator would.
    pub fn cli(&self, args: &[&str]) -> Cli {
        Cli::run(
            &self.opts.bin,
            &self.data_dir(),
            Some(&self.config_path()),
            args,
        )
    }
}

impl Drop for KuvertServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The outcome of a CLI run.
pub struct Cli {
    pub output: Output,
}

impl Cli {
    pub fn run(bin: &Path, data_dir: &Path, config: Option<&Path>, args: &[&str]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("KUVERT_LOG", "warn");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        Self {
            output: cmd.output().expect("run kuvert"),
        }
    }
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout(), self.stderr()))
    }
}
