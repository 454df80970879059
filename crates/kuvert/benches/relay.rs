//! Relay benchmark (not a test): Kuvert beside Postfix on the same machine, in one run.
//!
//!     cargo bench -p kuvert --bench relay                    # 20,000 messages, as in BENCHMARKS.md
//!     cargo bench -p kuvert --bench relay -- --record 1      # and append the results there
//!     cargo bench -p kuvert --bench relay -- --messages 500  # a smoke run
//!
//! Postfix's `smtp-sink` is the destination and `smtp-source` the client (20 sessions, each
//! sending its messages over one connection), both from Debian's postfix package. Kuvert runs
//! as `serve --dev` (SQLite, every message durable before its 250), with an SMTP-IP
//! credential for loopback, every domain routed to the sink, and DKIM signing (RSA-2048).
//! Then the same load goes through a Postfix relay this bench configures in a temporary
//! directory (its queue as shipped, no DKIM) to the same sink. Postfix needs root; without
//! it that part is skipped. Last, the HTTP variant: the same messages through
//! `POST /v1/messages` from 32 clients.
//!
//! End to end is from the start of `smtp-source` to the sink's count reaching the number of
//! messages. Kuvert's accept latency over SMTP is read from its `/metrics` histogram
//! (interpolated within a bucket, as Prometheus does); over HTTP it is each client's time.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuvert_testkit::{KuvertServer, ServerOptions};
use support::{HttpLoad, http_load, peak_rss_mib, percentile, read_flags};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_kuvert");
const FROM: &str = "demo@sandbox.kuvert.test";

struct Args {
    messages: usize,
    sessions: usize,
    clients: usize,
    /// 0: only the 5 KB run.
    large: usize,
    smtp: usize,
    postfix: usize,
    http: usize,
    record: usize,
}

fn main() {
    let mut a = Args {
        messages: 20_000,
        sessions: 20,
        clients: 32,
        large: 1,
        smtp: 1,
        postfix: 1,
        http: 1,
        record: 0,
    };
    read_flags(&mut [
        ("--messages", &mut a.messages),
        ("--sessions", &mut a.sessions),
        ("--clients", &mut a.clients),
        ("--large", &mut a.large),
        ("--smtp", &mut a.smtp),
        ("--postfix", &mut a.postfix),
        ("--http", &mut a.http),
        ("--record", &mut a.record),
    ]);
    let root = command_output("id", &["-u"]).trim() == "0";
    if a.postfix == 1 && !root {
        eprintln!("Postfix needs root to start; its part is skipped (--postfix 0 to silence)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let sizes: &[usize] = match (a.smtp, a.large) {
        (0, _) => &[],
        (_, 1) => &[5 * 1024, 100 * 1024],
        _ => &[5 * 1024],
    };
    for &size in sizes {
        let kuvert = rt.block_on(kuvert_smtp(&a, size, root));
        let postfix = (a.postfix == 1 && root).then(|| postfix_smtp(&a, size, root));
        rows.push((size, kuvert, postfix));
    }
    let http = (a.http == 1).then(|| rt.block_on(kuvert_http(&a, root)));
    let report = report(&a, &rows, http.as_ref());
    println!("{report}");
    if a.record == 1 {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md");
        let mut all = std::fs::read_to_string(&path).expect("BENCHMARKS.md");
        all.push_str(&report);
        std::fs::write(&path, all).expect("BENCHMARKS.md");
        println!("(appended to {})", path.display());
    }
}

/// Messages a second: accepted, and end to end.
struct Rates {
    accepted_per_s: f64,
    end_to_end_per_s: f64,
}

impl Rates {
    fn of(messages: usize, accepted: Duration, delivered: Duration) -> Self {
        let n = messages as f64;
        Self {
            accepted_per_s: n / accepted.as_secs_f64(),
            end_to_end_per_s: n / delivered.as_secs_f64(),
        }
    }
}

/// What one run of Kuvert measured: its rates, accept latency p50 and p99 in ms, peak RSS.
struct Run {
    rates: Rates,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_mib: f64,
}

async fn kuvert_smtp(a: &Args, size: usize, root: bool) -> Run {
    let sink = Sink::start(root);
    let server = kuvert(&sink);
    let created = server.cli(&[
        "key",
        "create",
        "--account",
        FROM,
        "--smtp-ip",
        "127.0.0.0/8",
    ]);
    assert!(created.ok(), "{}", created.stderr());
    let addr = server.smtp["submission"].to_string();
    let start = Instant::now();
    smtp_source(a, size, &addr);
    let accepted = start.elapsed();
    let delivered = sink.wait_for(a.messages) - start;
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics");
    Run {
        rates: Rates::of(a.messages, accepted, delivered),
        p50_ms: histogram_quantile(&metrics, "kuvert_accept_duration_seconds", 0.50) * 1000.0,
        p99_ms: histogram_quantile(&metrics, "kuvert_accept_duration_seconds", 0.99) * 1000.0,
        peak_rss_mib: server.pid().map_or(0.0, peak_rss_mib),
    }
}

async fn kuvert_http(a: &Args, root: bool) -> Run {
    let sink = Sink::start(root);
    let server = kuvert(&sink);
    let key = server.dev_key();
    let start = Instant::now();
    let HttpLoad { latencies, took } =
        http_load(&server.base_url, &key, a.messages, 5 * 1024, a.clients).await;
    let delivered = sink.wait_for(a.messages) - start;
    Run {
        rates: Rates::of(a.messages, took, delivered),
        p50_ms: percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        p99_ms: percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        peak_rss_mib: server.pid().map_or(0.0, peak_rss_mib),
    }
}

/// `serve --dev` with every domain routed to the sink and no quota in the way; more TOML,
/// for experiments, from `RELAY_BENCH_CONFIG`.
fn kuvert(sink: &Sink) -> KuvertServer {
    let extra = std::env::var("RELAY_BENCH_CONFIG").unwrap_or_default();
    let config = format!(
        "[smtp]\nsubmission_listen = \"127.0.0.1:0\"\nsubmission_tls_listen = \"\"\ninbound_listen = \"\"\n\
         [plans.free]\nmonthly_quota = 100000000\ndaily_limit = 100000000\nhourly_limit = 100000000\n\
         [delivery]\nmode = \"mx\"\n{extra}\n[delivery.routes]\n\"*\" = \"127.0.0.1:{}\"\n",
        sink.port
    );
    KuvertServer::start(ServerOptions::new(BIN).arg("--dev").config(&config))
}

fn postfix_smtp(a: &Args, size: usize, root: bool) -> Rates {
    let sink = Sink::start(root);
    let relay = Postfix::start(sink.port);
    let start = Instant::now();
    smtp_source(a, size, &format!("127.0.0.1:{}", relay.port));
    let accepted = start.elapsed();
    let delivered = sink.wait_for(a.messages) - start;
    Rates::of(a.messages, accepted, delivered)
}

fn smtp_source(a: &Args, size: usize, addr: &str) {
    let out = Command::new("smtp-source")
        .args([
            "-d",
            "-s",
            &a.sessions.to_string(),
            "-m",
            &a.messages.to_string(),
        ])
        .args([
            "-l",
            &size.to_string(),
            "-f",
            FROM,
            "-t",
            "rcpt@example.com",
            addr,
        ])
        .output()
        .expect("smtp-source (Debian package postfix)");
    assert!(
        out.status.success(),
        "smtp-source: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Postfix's `smtp-sink`, counting what it receives.
struct Sink {
    child: Child,
    port: u16,
    received: Arc<Mutex<(usize, Instant)>>,
}

impl Sink {
    fn start(root: bool) -> Self {
        let port = free_port();
        let mut cmd = Command::new("smtp-sink");
        if root {
            cmd.args(["-u", "nobody"]);
        }
        let mut child = cmd
            .args(["-c", &format!("127.0.0.1:{port}"), "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (Debian package postfix)");
        let received = Arc::new(Mutex::new((0, Instant::now())));
        let out = child.stdout.take().expect("stdout");
        let counts = received.clone();
        // It rewrites "sess=.. quit=.. mesg=N" after each message, separated by CR.
        std::thread::spawn(move || {
            // Buffered: the bench shares the cores it measures.
            let mut line = Vec::new();
            for byte in std::io::BufReader::new(out).bytes() {
                let Ok(byte) = byte else { break };
                if byte != b'\r' && byte != b'\n' {
                    line.push(byte);
                    continue;
                }
                let text = String::from_utf8_lossy(&line);
                if let Some(n) = text
                    .rsplit_once("mesg=")
                    .and_then(|(_, n)| n.trim().parse::<usize>().ok())
                {
                    *counts.lock().expect("counts") = (n, Instant::now());
                }
                line.clear();
            }
        });
        wait_for_port(port);
        Self {
            child,
            port,
            received,
        }
    }

    /// When the `n`th message arrived.
    fn wait_for(&self, n: usize) -> Instant {
        let limit = Instant::now() + Duration::from_secs(1800);
        loop {
            let (count, at) = *self.received.lock().expect("counts");
            if count >= n {
                return at;
            }
            assert!(Instant::now() < limit, "stalled at {count} of {n} messages");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Postfix relay in a temporary directory: its own config, queue and log, listening on a
/// free port, relaying everything from loopback to the sink. Defaults as shipped otherwise.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    fn start(sink_port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("postfix-bench")
            .tempdir()
            .expect("dir");
        let d = dir.path().display().to_string();
        let port = free_port();
        for sub in ["etc", "spool", "data"] {
            std::fs::create_dir(dir.path().join(sub)).expect("dir");
        }
        // The postfix user must reach its queue and own its data directory.
        run("chmod", &["755", &d]);
        run("chown", &["postfix", &format!("{d}/data")]);
        std::fs::copy("/etc/postfix/master.cf", dir.path().join("etc/master.cf"))
            .expect("/etc/postfix/master.cf (Debian package postfix)");
        std::fs::write(
            dir.path().join("etc/main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {d}/spool\ndata_directory = {d}/data\n\
                 mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\nmyhostname = relay.bench.localhost\nmydestination =\n\
                 mynetworks = 127.0.0.0/8\nrelayhost = [127.0.0.1]:{sink_port}\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject\n\
                 smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n\
                 maillog_file_prefixes = {d}\nmaillog_file = {d}/maillog\n"
            ),
        )
        .expect("main.cf");
        let etc = format!("{d}/etc");
        // Debian's master.cf runs services chrooted, which needs copies of system files.
        run("postconf", &["-c", &etc, "-F", "*/*/chroot = n"]);
        run("postconf", &["-c", &etc, "-MX", "smtp/inet"]);
        run(
            "postconf",
            &[
                "-c",
                &etc,
                "-Me",
                &format!("127.0.0.1:{port}/inet = 127.0.0.1:{port} inet n - n - - smtpd"),
            ],
        );
        run("postfix", &["-c", &etc, "start"]);
        wait_for_port(port);
        Self { dir, port }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let etc = self.dir.path().join("etc").display().to_string();
        let _ = Command::new("postfix").args(["-c", &etc, "stop"]).output();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for_port(port: u16) {
    let limit = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < limit, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `q` quantile of a Prometheus histogram in `metrics`, interpolated linearly within its
/// bucket (as `histogram_quantile` does), in the histogram's unit.
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            Some((le.parse().ok()?, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut below = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le == f64::INFINITY {
                return below.0;
            }
            let share = (rank - below.1) / (count - below.1).max(1.0);
            return below.0 + (le - below.0) * share;
        }
        below = (le, count);
    }
    f64::NAN
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let gib = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} × {model}, {gib:.0} GiB")
}

fn report(a: &Args, rows: &[(usize, Run, Option<Rates>)], http: Option<&Run>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let _ = writeln!(
        out,
        "\n### Relay run of {}: {} messages, {} SMTP sessions\n\nMachine: {}. Command: `cargo bench -p kuvert --bench relay`.\n",
        date.trim(),
        a.messages,
        a.sessions,
        machine()
    );
    let _ = writeln!(
        out,
        "| message | Kuvert end to end | Postfix end to end | ratio | Kuvert accepted/s | Postfix accepted/s | Kuvert accept p50 | p99 | Kuvert peak RSS |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (size, k, p) in rows {
        let (pe, pa, ratio) = match p {
            Some(p) => (
                format!("{:.0}/s", p.end_to_end_per_s),
                format!("{:.0}", p.accepted_per_s),
                format!("{:.2}", k.rates.end_to_end_per_s / p.end_to_end_per_s),
            ),
            None => ("not run".into(), "not run".into(), "".into()),
        };
        let _ = writeln!(
            out,
            "| {} KB | {:.0}/s | {pe} | {ratio} | {:.0} | {pa} | {:.1} ms | {:.1} ms | {:.0} MiB |",
            size / 1024,
            k.rates.end_to_end_per_s,
            k.rates.accepted_per_s,
            k.p50_ms,
            k.p99_ms,
            k.peak_rss_mib
        );
    }
    if let Some(h) = http {
        let _ = writeln!(
            out,
            "\nHTTP (`POST /v1/messages`, {} clients, 5 KB): {:.0} accepted/s, {:.0}/s end to end, accept p50 {:.1} ms, p99 {:.1} ms, peak RSS {:.0} MiB.",
            a.clients,
            h.rates.accepted_per_s,
            h.rates.end_to_end_per_s,
            h.p50_ms,
            h.p99_ms,
            h.peak_rss_mib
        );
    }
    out
}
