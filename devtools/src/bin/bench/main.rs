//! The benchmark of issue 7: how close the function is to the floor of any Rust Lambda that stores a row, measured
//! side by side in one run, on one PostgreSQL 17 cluster it starts itself, through the same Runtime API server.
//! A report, never a timed assertion.
//!
//!     cargo run --release -p devtools --bin bench                          # print the table
//!     cargo run --release -p devtools --bin bench -- --write BENCHMARKS.md # and keep it
//!
//! Options: `--cold N` cold starts of each binary (default 100), `--warm N` timed warm requests of each kind
//! (default 3000), `--write PATH`, `--no-zip` (skip `./build.sh` even when it exists).
//!
//! What it compares:
//! - init: process start to the first `/next`, our release `bootstrap` against a hello-world `lambda_runtime`
//!   binary (`devtools/hello`) built in the same run with the same profile;
//! - first request in a fresh process (connect + store) against a bare connect + first `INSERT ... RETURNING`
//!   with the same crate and connection kind, in this process;
//! - warm latency against the hello world's warm latency through the same server plus the bare `INSERT ...
//!   RETURNING` round trip, measured both ways D6 names (`query_typed`, and a statement prepared once);
//! - peak RSS (VmHWM), binary size, and the deploy zips when `./build.sh` exists.
//!
//! Warm requests run in interleaved blocks (ours, hello, the two bare loops, in turn), and cold starts alternate,
//! so a busy machine slows every side alike rather than whichever ran last.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ::postgres::types::Type;
use devtools::postgres::{self, Cluster, TestDatabase};
use devtools::runtime_api::{Function, RuntimeApi};
use devtools::{LOCAL_STATE_SECRET, fixture, sign_state};
use serde_json::Value;

/// The floor's statement: the bare parameterised insert into the function's own table (its indexes and its
/// notify trigger included, so the floor pays for the table as the function does).
const BARE_INSERT: &str =
    "insert into cafe24.oauth_authorization_codes (code, state) values ($1, $2) returning id";
const TIMEOUT: Duration = Duration::from_secs(20);
/// Warm requests of each kind before timing starts: connections open, caches and the planner warm.
const WARM_UP: usize = 200;
/// A pause before each cold measurement, so the previous one's teardown (a killed process, its server backend
/// exiting) is not charged to the next.
const SETTLE: Duration = Duration::from_millis(20);
/// Warm requests are timed in this many interleaved blocks.
const BLOCKS: usize = 10;
/// The targets.
const TARGET_RATIO: f64 = 1.3;
const TARGET_RSS_BYTES: u64 = 16_000_000;
const TARGET_ARM64_ZIP_BYTES: u64 = 1_400_000;

struct Options {
    cold: usize,
    warm: usize,
    write: Option<PathBuf>,
    zips: bool,
    args: Vec<String>,
}

fn main() -> ExitCode {
    match options().and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options {
        cold: 100,
        warm: 3000,
        write: None,
        zips: true,
        args: args.clone(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n > 0)
                .ok_or(format!("{name} takes a positive number"))
        };
        match arg.as_str() {
            "--cold" => options.cold = number("--cold")?,
            "--warm" => options.warm = number("--warm")?,
            "--write" => options.write = Some(args.next().ok_or("--write takes a path")?.into()),
            "--no-zip" => options.zips = false,
            "-h" | "--help" => {
                return Err("usage: bench [--cold N] [--warm N] [--write PATH] [--no-zip]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn run(options: &Options) -> Result<(), String> {
    let root = postgres::workspace_root();
    let load_before = load_average();

    let bootstrap = cargo_build(&root, &["--bin", "bootstrap"], "bootstrap")?;
    let hello = cargo_build(&root, &["-p", "lambda-hello", "--bin", "hello"], "hello")?;
    let sizes = (file_size(&bootstrap)?, file_size(&hello)?);
    let zips = if !options.zips {
        Zips::Skipped("skipped (--no-zip)")
    } else if root.join("build.sh").exists() {
        Zips::Built {
            arm64: build_zip(&root, "arm64"),
            x86_64: build_zip(&root, "x86_64"),
        }
    } else {
        Zips::Skipped("n/a (build.sh missing)")
    };

    eprintln!("starting a PostgreSQL 17 cluster ...");
    // pg_stat_statements tells the server's share of each statement; it costs every statement alike.
    let cluster = Cluster::start_with(postgres::Options {
        config: vec![
            "shared_preload_libraries = 'pg_stat_statements'".into(),
            "pg_stat_statements.track_planning = on".into(),
        ],
        ..Default::default()
    })?;
    let db = cluster.create_database()?;
    db.connect()?
        .batch_execute("create extension if not exists pg_stat_statements")
        .map_err(|e| format!("pg_stat_statements: {e}"))?;
    let server_version = db
        .connect()?
        .query_one("show server_version", &[])
        .map_err(|e| e.to_string())?
        .get::<_, String>(0);
    let mut env = db.env();
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    let mut pairs = Pairs::new()?;

    eprintln!("{} cold starts of each binary ...", options.cold);
    let cold = cold_starts(options.cold, &bootstrap, &hello, &env, &db, &mut pairs)?;
    eprintln!("{} warm requests of each kind ...", options.warm);
    let warm = warm_requests(options.warm, &bootstrap, &hello, &env, &db, &mut pairs)?;
    drop(cluster);

    let report = Report {
        cold,
        warm,
        sizes,
        zips,
        machine: Machine {
            load_before,
            load_after: load_average(),
            server_version,
        },
        command: std::iter::once("cargo run --release -p devtools --bin bench".to_owned())
            .chain((!options.args.is_empty()).then(|| format!("-- {}", options.args.join(" "))))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let text = report.render();
    println!("{text}");
    if let Some(path) = &options.write {
        let path = if path.is_relative() {
            root.join(path)
        } else {
            path.clone()
        };
        std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `cargo build --release <args>` in the workspace, and the path of the binary it made.
fn cargo_build(root: &Path, args: &[&str], binary: &str) -> Result<PathBuf, String> {
    eprintln!("cargo build --release {} ...", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release {} failed", args.join(" ")));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release").join(binary))
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

enum Zips {
    Skipped(&'static str),
    Built {
        arm64: Result<u64, String>,
        x86_64: Result<u64, String>,
    },
}

/// `./build.sh --arch <arch>`, then the size of `target/lambda/<arch>/deploy.zip`.
fn build_zip(root: &Path, arch: &str) -> Result<u64, String> {
    eprintln!("./build.sh --arch {arch} ...");
    let status = Command::new(root.join("build.sh"))
        .args(["--arch", arch])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("./build.sh: {e}"))?;
    if !status.success() {
        return Err(format!("build.sh failed ({status})"));
    }
    file_size(&root.join("target/lambda").join(arch).join("deploy.zip"))
}

/// Unique (code, state) pairs, states signed as the function expects, and the events that carry them.
struct Pairs {
    template: Value,
    next: u64,
}

impl Pairs {
    fn new() -> Result<Pairs, String> {
        Ok(Pairs {
            template: fixture("http-api", "success")?,
            next: 0,
        })
    }

    fn pair(&mut self) -> (String, String) {
        self.next += 1;
        let n = self.next;
        let state = sign_state(LOCAL_STATE_SECRET, &format!("benchmall:n{n:08}"));
        (format!("bench-code-{n:08}"), state)
    }

    fn event(&mut self) -> Value {
        let (code, state) = self.pair();
        let mut event = self.template.clone();
        event["rawQueryString"] = format!("code={code}&state={state}").into();
        event
    }
}

/// The sorted samples of one measurement.
struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort();
        Samples(samples)
    }

    /// Nearest-rank percentile, `p` in (0, 1].
    fn pct(&self, p: f64) -> Duration {
        let n = self.0.len();
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.0.get(rank - 1).copied().unwrap_or_default()
    }

    fn p50(&self) -> Duration {
        self.pct(0.50)
    }
}

struct Cold {
    ours_init: Samples,
    hello_init: Samples,
    ours_first: Samples,
    hello_first: Samples,
    bare_connect: Samples,
    bare_first: Samples,
    ours_hwm: u64,
    hello_hwm: u64,
}

/// One fresh process behind a fresh Runtime API server: (init, first invocation, VmHWM after it).
fn cold_start(
    binary: &Path,
    env: &[(String, String)],
    event: &Value,
    must_save: bool,
) -> Result<(Duration, Duration, u64), String> {
    let api = RuntimeApi::start()?;
    std::thread::sleep(SETTLE);
    let function = Function::start(binary, &api, env)?;
    let first_next = api
        .wait_first_next(TIMEOUT)
        .ok_or_else(|| format!("{} never asked for an event", binary.display()))?;
    let init = first_next.saturating_duration_since(function.started);
    let sent = Instant::now();
    let invocation = api.invoke(event, TIMEOUT)?;
    let first = sent.elapsed();
    if must_save {
        check_saved(&invocation)?;
    }
    let hwm = vm_hwm(function.pid())?;
    Ok((init, first, hwm))
}

fn check_saved(invocation: &devtools::runtime_api::Invocation) -> Result<(), String> {
    match (invocation.status(), invocation.body()) {
        (Some(200), Some(body)) if body["id"].is_i64() => Ok(()),
        _ => Err(format!(
            "the function did not save a new pair: {:?}",
            invocation.reply
        )),
    }
}

fn cold_starts(
    rounds: usize,
    bootstrap: &Path,
    hello: &Path,
    env: &[(String, String)],
    db: &TestDatabase,
    pairs: &mut Pairs,
) -> Result<Cold, String> {
    let mut samples: [Vec<Duration>; 6] = Default::default();
    let (mut ours_hwm, mut hello_hwm) = (0, 0);
    // Round 0 warms the page cache and the server and is not counted.
    for round in 0..=rounds {
        let mut measured = [Duration::ZERO; 6];
        let ours_first = round % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == ours_first {
                let (init, first, hwm) = cold_start(bootstrap, env, &pairs.event(), true)?;
                (measured[0], measured[2]) = (init, first);
                ours_hwm = ours_hwm.max(hwm);
            } else {
                let (init, first, hwm) = cold_start(hello, env, &pairs.event(), false)?;
                (measured[1], measured[3]) = (init, first);
                hello_hwm = hello_hwm.max(hwm);
            }
        }
        // The floor of a first request: a bare connect, then connect + the first insert.
        std::thread::sleep(SETTLE);
        let started = Instant::now();
        let client = db.connect()?;
        measured[4] = started.elapsed();
        drop(client);
        let (code, state) = pairs.pair();
        std::thread::sleep(SETTLE);
        let started = Instant::now();
        let mut client = db.connect()?;
        client
            .query_typed(BARE_INSERT, &[(&code, Type::TEXT), (&state, Type::TEXT)])
            .map_err(|e| e.to_string())?;
        measured[5] = started.elapsed();
        drop(client);
        if round > 0 {
            for (list, sample) in samples.iter_mut().zip(measured) {
                list.push(sample);
            }
        }
    }
    let [a, b, c, d, e, f] = samples.map(Samples::new);
    Ok(Cold {
        ours_init: a,
        hello_init: b,
        ours_first: c,
        hello_first: d,
        bare_connect: e,
        bare_first: f,
        ours_hwm,
        hello_hwm,
    })
}

struct Warm {
    ours: Samples,
    /// From our log lines (`elapsed_ms`, `database_ms`), for the timed requests: where our time goes.
    ours_handler: Samples,
    ours_database: Samples,
    hello: Samples,
    typed: Samples,
    prepared: Samples,
    ours_hwm: u64,
    hello_hwm: u64,
    requests: usize,
    server: ServerTimes,
}

/// Mean server-side time per call (execution, planning) from pg_stat_statements, over the timed warm blocks.
struct ServerTimes {
    /// Every statement on the table other than the bare insert that ran about once per request: the function's.
    ours: Vec<(String, i64, f64, f64)>,
    /// The bare insert, both ways together (the same statement text, so one entry).
    bare: Option<(i64, f64, f64)>,
}

fn server_times(admin: &mut ::postgres::Client, requests: usize) -> Result<ServerTimes, String> {
    let rows = admin
        .query(
            "select query, calls, mean_exec_time, mean_plan_time from pg_stat_statements \
              where dbid = (select oid from pg_database where datname = current_database()) \
                and query ilike '%oauth_authorization_codes%' and calls >= $1 \
              order by calls desc",
            &[&(requests as i64 / 2)],
        )
        .map_err(|e| format!("pg_stat_statements: {e}"))?;
    let mut times = ServerTimes {
        ours: Vec::new(),
        bare: None,
    };
    for row in rows {
        let (query, calls, exec, plan): (String, i64, f64, f64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if query.trim() == BARE_INSERT {
            times.bare = Some((calls, exec, plan));
        } else {
            times.ours.push((query, calls, exec, plan));
        }
    }
    Ok(times)
}

fn warm_requests(
    requests: usize,
    bootstrap: &Path,
    hello: &Path,
    env: &[(String, String)],
    db: &TestDatabase,
    pairs: &mut Pairs,
) -> Result<Warm, String> {
    let ours_api = RuntimeApi::start()?;
    let ours = Function::start(bootstrap, &ours_api, env)?;
    let hello_api = RuntimeApi::start()?;
    let hello_fn = Function::start(hello, &hello_api, env)?;
    let mut typed_client = db.connect()?;
    let mut prepared_client = db.connect()?;
    let prepared = prepared_client
        .prepare_typed(BARE_INSERT, &[Type::TEXT, Type::TEXT])
        .map_err(|e| e.to_string())?;

    let mut timed_ids = std::collections::HashSet::new();
    // Each kind: one request, its round trip.
    let mut one = |kind: usize, pairs: &mut Pairs, timed: bool| -> Result<Duration, String> {
        match kind {
            0 | 1 => {
                let (api, must_save) = if kind == 0 {
                    (&ours_api, true)
                } else {
                    (&hello_api, false)
                };
                let event = pairs.event();
                let sent = Instant::now();
                let invocation = api.invoke(&event, TIMEOUT)?;
                let elapsed = sent.elapsed();
                if must_save {
                    check_saved(&invocation)?;
                    if timed {
                        timed_ids.insert(invocation.request_id);
                    }
                }
                Ok(elapsed)
            }
            2 => {
                let (code, state) = pairs.pair();
                let sent = Instant::now();
                typed_client
                    .query_typed(BARE_INSERT, &[(&code, Type::TEXT), (&state, Type::TEXT)])
                    .map_err(|e| e.to_string())?;
                Ok(sent.elapsed())
            }
            _ => {
                let (code, state) = pairs.pair();
                let sent = Instant::now();
                prepared_client
                    .query(&prepared, &[&code, &state])
                    .map_err(|e| e.to_string())?;
                Ok(sent.elapsed())
            }
        }
    };

    for kind in 0..4 {
        for _ in 0..WARM_UP {
            one(kind, pairs, false)?;
        }
    }
    let mut admin = db.connect()?;
    admin
        .batch_execute("select pg_stat_statements_reset()")
        .map_err(|e| e.to_string())?;
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let per_block = requests.div_ceil(BLOCKS);
    for block in 0..BLOCKS {
        for turn in 0..4 {
            let kind = (block + turn) % 4;
            for _ in 0..per_block {
                samples[kind].push(one(kind, pairs, true)?);
            }
        }
    }
    let ours_hwm = vm_hwm(ours.pid())?;
    let hello_hwm = vm_hwm(hello_fn.pid())?;
    let server = server_times(&mut admin, per_block * BLOCKS)?;
    // The reader of the function's stdout may lag behind its last replies.
    std::thread::sleep(Duration::from_millis(200));
    let (mut handler, mut database) = (Vec::new(), Vec::new());
    for line in ours.output() {
        let Ok(line) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if line.get("level").is_none()
            || !line["request_id"]
                .as_str()
                .is_some_and(|id| timed_ids.contains(id))
        {
            continue;
        }
        let ms = |key: &str| {
            line[key]
                .as_f64()
                .map(|v| Duration::from_secs_f64(v / 1000.0))
        };
        handler.extend(ms("elapsed_ms"));
        database.extend(ms("database_ms"));
    }
    let [ours_s, hello_s, typed_s, prepared_s] = samples.map(Samples::new);
    Ok(Warm {
        ours: ours_s,
        ours_handler: Samples::new(handler),
        ours_database: Samples::new(database),
        hello: hello_s,
        typed: typed_s,
        prepared: prepared_s,
        ours_hwm,
        hello_hwm,
        requests: per_block * BLOCKS,
        server,
    })
}

/// Peak resident set size of a live process, in bytes (`VmHWM` of `/proc/<pid>/status`, in KiB).
fn vm_hwm(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no VmHWM"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

struct Machine {
    load_before: String,
    load_after: String,
    server_version: String,
}

struct Report {
    cold: Cold,
    warm: Warm,
    sizes: (u64, u64),
    zips: Zips,
    machine: Machine,
    command: String,
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(ours: f64, floor: f64) -> f64 {
    if floor > 0.0 { ours / floor } else { f64::NAN }
}

fn times(ours: Duration, floor: Duration) -> String {
    format!("{:.2}x", ratio(ours.as_secs_f64(), floor.as_secs_f64()))
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn within(ours: Duration, floor: Duration) -> String {
    let r = ratio(ours.as_secs_f64(), floor.as_secs_f64());
    format!("<= {TARGET_RATIO}x: {}", met(r <= TARGET_RATIO))
}

/// Decimal megabytes, as the targets are written (1.4 MB = 1,400,000 bytes).
fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn bytes(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} B")
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    fn render(&self) -> String {
        let (cold, warm) = (&self.cold, &self.warm);
        let n_cold = cold.ours_init.0.len();
        // The warm floor: the hello world's round trip plus the cheaper of the two ways to send the insert.
        let (bare, bare_name) = if warm.prepared.p50() <= warm.typed.p50() {
            (&warm.prepared, "prepared")
        } else {
            (&warm.typed, "query_typed")
        };
        let floor = |p: f64| warm.hello.pct(p) + bare.pct(p);
        let ours_hwm = cold.ours_hwm.max(warm.ours_hwm);
        let hello_hwm = cold.hello_hwm.max(warm.hello_hwm);

        let mut t = String::new();
        let mut row = |cells: [&str; 5]| {
            let _ = writeln!(t, "| {} |", cells.join(" | "));
        };
        row(["measure", "ours", "floor", "ours / floor", "target"]);
        row(["---", "---:", "---:", "---:", "---"]);
        for (p, name, target) in [(0.50, "p50", true), (0.95, "p95", false)] {
            row([
                &if target {
                    format!("init {name}: process start to first `/next` ({n_cold} cold starts)")
                } else {
                    format!("init {name}")
                },
                &ms(cold.ours_init.pct(p)),
                &format!("{} hello world", ms(cold.hello_init.pct(p))),
                &times(cold.ours_init.pct(p), cold.hello_init.pct(p)),
                &if target {
                    within(cold.ours_init.pct(p), cold.hello_init.pct(p))
                } else {
                    String::new()
                },
            ]);
        }
        for (p, name, target) in [(0.50, "p50", true), (0.95, "p95", false)] {
            row([
                &if target {
                    format!(
                        "first request {name}: connect + store in a fresh process ({n_cold} processes)"
                    )
                } else {
                    format!("first request {name}")
                },
                &ms(cold.ours_first.pct(p)),
                &format!("{} bare connect + INSERT", ms(cold.bare_first.pct(p))),
                &times(cold.ours_first.pct(p), cold.bare_first.pct(p)),
                &if target {
                    within(cold.ours_first.pct(p), cold.bare_first.pct(p))
                } else {
                    String::new()
                },
            ]);
        }
        for (p, name, target) in [
            (0.50, "p50", true),
            (0.95, "p95", false),
            (0.99, "p99", false),
        ] {
            row([
                &if target {
                    format!("warm {name} ({} requests)", warm.requests)
                } else {
                    format!("warm {name}")
                },
                &ms(warm.ours.pct(p)),
                &format!(
                    "{} = hello {} + INSERT {bare_name} {}",
                    ms(floor(p)),
                    ms(warm.hello.pct(p)),
                    ms(bare.pct(p))
                ),
                &times(warm.ours.pct(p), floor(p)),
                &if target {
                    within(warm.ours.pct(p), floor(p))
                } else {
                    String::new()
                },
            ]);
        }
        row([
            "peak RSS (VmHWM)",
            &mb(ours_hwm),
            &format!("{} hello world", mb(hello_hwm)),
            &format!("{:.2}x", ratio(ours_hwm as f64, hello_hwm as f64)),
            &format!("< 16 MB: {}", met(ours_hwm < TARGET_RSS_BYTES)),
        ]);
        row([
            &format!("release binary ({}, as built here)", std::env::consts::ARCH),
            &bytes(self.sizes.0),
            &format!("{} hello world", bytes(self.sizes.1)),
            &format!("{:.2}x", ratio(self.sizes.0 as f64, self.sizes.1 as f64)),
            "",
        ]);
        let zip = |size: &Result<u64, String>| match size {
            Ok(n) => format!("{} ({})", bytes(*n), mb(*n)),
            Err(e) => format!("failed: {e}"),
        };
        match &self.zips {
            Zips::Skipped(why) => {
                row(["zip arm64", why, "", "", "< 1.4 MB: not measured"]);
                row(["zip x86_64", why, "", "", ""]);
            }
            Zips::Built { arm64, x86_64 } => {
                let arm64_target = match arm64 {
                    Ok(n) => format!("< 1.4 MB: {}", met(*n < TARGET_ARM64_ZIP_BYTES)),
                    Err(_) => "< 1.4 MB: not measured".into(),
                };
                row(["zip arm64", &zip(arm64), "", "", &arm64_target]);
                row(["zip x86_64", &zip(x86_64), "", "", ""]);
            }
        }

        let mut c = String::new();
        let mut line = |name: &str, s: &Samples| {
            if s.0.is_empty() {
                let _ = writeln!(c, "| {name} | n/a | | | 0 |");
                return;
            }
            let _ = writeln!(
                c,
                "| {name} | {} | {} | {} | {} |",
                ms(s.p50()),
                ms(s.pct(0.95)),
                ms(s.pct(0.99)),
                s.0.len()
            );
        };
        line(
            "ours, warm, through the Runtime API (for comparison)",
            &warm.ours,
        );
        line(
            "ours, warm, inside the handler (`elapsed_ms` of its log lines)",
            &warm.ours_handler,
        );
        line(
            "ours, warm, of which the database (`database_ms`: the blocking-pool hop and the statement)",
            &warm.ours_database,
        );
        line("hello world, warm, through the Runtime API", &warm.hello);
        line(
            "bare `INSERT ... RETURNING`, `query_typed` (unnamed statement, one round trip)",
            &warm.typed,
        );
        line(
            "bare `INSERT ... RETURNING`, prepared once and reused (what `pgbench -M prepared` measures)",
            &warm.prepared,
        );
        line(
            "bare connect (TCP, SCRAM-SHA-256, no TLS)",
            &cold.bare_connect,
        );
        line(
            "bare connect + first `INSERT ... RETURNING` (`query_typed`)",
            &cold.bare_first,
        );
        line(
            "hello world, first invocation in a fresh process",
            &cold.hello_first,
        );
        line("ours, init", &cold.ours_init);
        line("hello world, init", &cold.hello_init);

        let per_call = |calls: i64, exec: f64, plan: f64| {
            format!("{exec:.3} ms executing + {plan:.3} ms planning, mean of {calls} calls")
        };
        let mut server = String::new();
        for (query, calls, exec, plan) in &warm.server.ours {
            let first_line = query.lines().next().unwrap_or_default().trim();
            let _ = writeln!(
                server,
                "- the function's statement (`{first_line} ...`): {}",
                per_call(*calls, *exec, *plan)
            );
        }
        if warm.server.ours.is_empty() {
            server.push_str("- the function's statement: not found in pg_stat_statements\n");
        }
        match warm.server.bare {
            Some((calls, exec, plan)) => {
                let _ = writeln!(
                    server,
                    "- the bare `INSERT ... RETURNING` (both ways): {}",
                    per_call(calls, exec, plan)
                );
            }
            None => server.push_str("- the bare insert: not found in pg_stat_statements\n"),
        }
        let d6 = warm.typed.p50().as_secs_f64() - warm.prepared.p50().as_secs_f64();
        let first_with_api = cold.bare_first.p50() + cold.hello_first.p50();
        let short = if n_cold < 15 || warm.requests < 3000 {
            "\n**A short run**: issue 7 asks for at least 15 cold starts and 3,000 warm requests.\n"
        } else {
            ""
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "# Benchmarks\n\n\
             The benchmark of issue 7: a report, not a test. The command is at the end; every number comes from one\n\
             run on one throwaway PostgreSQL {pg} cluster on loopback (TCP, SCRAM-SHA-256, no TLS), with our release\n\
             `bootstrap` and the floor's hello world (`devtools/hello`, the same `lambda_runtime` and tokio setup, the\n\
             same release profile) behind the same Lambda Runtime API test server (`devtools/src/runtime_api.rs`).\n\
             Cold starts alternate between the two binaries and warm requests run in {BLOCKS} interleaved blocks, so\n\
             load from elsewhere on the machine falls on every side alike: the p50 ratios are steadier than the absolute\n\
             numbers. The tails (p95, p99) on a busy machine mostly measure waits for a CPU, and ours hands each\n\
             request between more threads than the hello world does (the blocking pool, D6): compare tails across\n\
             runs before reading much into one.\n\n\
             {t}{short}\n\
             - **init**: from spawning the process to its first `GET /next` at the server.\n\
             - **first request**: a fresh process's first invocation, from queuing the event to receiving the reply;\n  \
               ours connects (SCRAM) and stores. Floor: a bare connect + first `INSERT ... RETURNING`\n  \
               (`query_typed`) with the same `postgres` crate and connection kind, in the benchmark's own process,\n  \
               so without the Runtime API round trip ours pays; with the hello world's first invocation\n  \
               ({hello_first}) added, the floor is {first_with_api} and the ratio {first_ratio}.\n\
             - **warm**: the caller's round trip through the Runtime API server (event queued, handed out on\n  \
               `/next`, reply posted back), every request a new pair. Floor: the hello world's round trip through\n  \
               the same server plus the bare parameterised `INSERT ... RETURNING` on a kept connection, whichever of\n  \
               D6's two ways was cheaper; the pX of the floor is the sum of the two pX. The function's statement\n  \
               also finds repeats and conflicts (D5) in the same round trip, so part of the distance is its price.\n\
             - **peak RSS**: the highest VmHWM of any of our processes in the run, read from `/proc/<pid>/status`\n  \
               while it was alive (the warm one served {warm_total} requests). MB = 1,000,000 bytes.\n\
             - **zips**: `./build.sh --arch arm64|x86_64` (target/lambda/<arch>/deploy.zip), when the script exists.\n\n\
             ## The parts\n\n\
             | measured alone | p50 | p95 | p99 | n |\n\
             |---|---:|---:|---:|---:|\n\
             {c}\n\
             Server side, from `pg_stat_statements` over the timed warm blocks:\n\n\
             {server}\n\
             D6, measured: the bare insert prepared once and reused costs {prepared} at p50 through the client, the\n\
             unnamed statement of `query_typed` {typed} ({d6:+.3} ms: parsing and planning on every request). Which\n\
             one the function sends, and why: the README, \"The database\".\n\n\
             ## Machine\n\n\
             - {nproc} CPUs (`nproc`), {cpu}\n\
             - {kernel}; {rustc}; PostgreSQL {pg}\n\
             - load average before / after the run: {lb} / {la} (other builds may share the machine); the\n  \
               benchmark ran at niceness {nice}\n\
             - date: {date}\n\
             - command: `{command}`\n",
            command = self.command,
            pg = self.machine.server_version,
            prepared = ms(warm.prepared.p50()),
            typed = ms(warm.typed.p50()),
            d6 = d6 * 1000.0,
            warm_total = WARM_UP + warm.requests,
            hello_first = ms(cold.hello_first.p50()),
            first_with_api = ms(first_with_api),
            first_ratio = times(cold.ours_first.p50(), first_with_api),
            nproc = std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu = cpu_model(),
            kernel = command_output("uname", &["-srm"]),
            rustc = command_output("rustc", &["--version"]),
            // SAFETY: getpriority only reads the calling process's scheduling priority.
            nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
            lb = self.machine.load_before,
            la = self.machine.load_after,
            date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        );
        out
    }
}
