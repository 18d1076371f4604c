//! BENCHMARKS.md: the measurements as markdown, section by section, with what each one measured.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::artifacts::Zips;
use crate::callgrind::Instructions;
use crate::cold::Cold;
use crate::cold128::{self, Cold128, Share};
use crate::common::{Samples, Section};
use crate::warm::{BLOCKS, WARM_UP, Warm};

/// The targets.
const TARGET_RATIO: f64 = 1.3;
const TARGET_COLD128_RATIO: f64 = 1.1;
const TARGET_RSS_BYTES: u64 = 16_000_000;
const TARGET_ARM64_ZIP_BYTES: u64 = 1_400_000;
/// Below these, a run is too short to compare with others.
const LEAST_COLD: usize = 15;
const LEAST_WARM: usize = 3000;

pub struct Machine {
    pub load_before: String,
    pub load_after: String,
    pub server_version: String,
    pub minutes: f64,
    /// [`code_version`] when the run started.
    pub code: String,
}

pub struct Report {
    pub cold: Cold,
    pub warm: Warm,
    pub cold128: Section<Cold128>,
    pub instructions: Section<Instructions>,
    pub sizes: (u64, u64),
    pub zips: Zips,
    pub machine: Machine,
    pub command: String,
}

/// A row of the targets table: ours against a floor, with the target's verdict where the row carries one.
fn floor_row(
    t: &mut String,
    label: &str,
    ours: Duration,
    floor: Duration,
    floor_text: &str,
    target: Option<f64>,
) {
    let verdict = target.map_or_else(String::new, |ratio| within(ours, floor, ratio));
    row(
        t,
        &[label, &ms(ours), floor_text, &times(ours, floor), &verdict],
    );
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

fn within(ours: Duration, floor: Duration, target: f64) -> String {
    let r = ratio(ours.as_secs_f64(), floor.as_secs_f64());
    format!("<= {target}x: {}", met(r <= target))
}

/// Decimal megabytes, as the targets are written (1.4 MB = 1,400,000 bytes).
fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// `n` with a comma every three digits.
fn grouped(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: u64) -> String {
    format!("{} B", grouped(n.into()))
}

/// A markdown table row.
fn row(out: &mut String, cells: &[&str]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
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

/// The commit the measured code was built from, and whether the function's files had uncommitted changes then.
pub fn code_version(root: &Path) -> String {
    let root = root.display().to_string();
    let commit = command_output("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let changed = command_output(
        "git",
        &[
            "-C",
            &root,
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
            "devtools",
        ],
    );
    match changed.as_str() {
        "" => format!("commit {commit}"),
        "unknown" => format!("commit {commit} (whether anything had changed is unknown)"),
        _ => format!(
            "commit {commit}, with uncommitted changes to {}",
            changed
                .lines()
                // `XY path` (or `XY old -> new`); the leading space of the first line is trimmed away.
                .filter_map(|l| l.split_whitespace().last())
                .map(|path| format!("`{path}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.summary());
        out.push_str(&self.cold128());
        out.push_str(&self.instructions());
        out.push_str(&self.parts());
        out.push_str(&self.machine());
        out
    }

    /// The cheaper of the two ways to send the bare insert: the warm floor's database part.
    fn bare(&self) -> (&Samples, &'static str) {
        let warm = &self.warm;
        if warm.prepared.p50() <= warm.typed.p50() {
            (&warm.prepared, "prepared")
        } else {
            (&warm.typed, "query_typed")
        }
    }

    /// The title, the table of targets and what each line measured.
    fn summary(&self) -> String {
        let (cold, warm) = (&self.cold, &self.warm);
        let n_cold = cold.ours_init.len();
        let (bare, bare_name) = self.bare();
        let floor = |p: f64| warm.hello.pct(p) + bare.pct(p);
        let ours_hwm = cold.ours_hwm.max(warm.ours_hwm);
        let hello_hwm = cold.hello_hwm.max(warm.hello_hwm);

        let mut t = String::new();
        row(
            &mut t,
            &["measure", "ours", "floor", "ours / floor", "target"],
        );
        row(&mut t, &["---", "---:", "---:", "---:", "---"]);
        // The target is judged on the p50 row; the other percentiles are shown beside it.
        let target = |p: f64| (p == 0.50).then_some(TARGET_RATIO);
        for (p, name) in [(0.50, "p50"), (0.95, "p95")] {
            let (ours, hello) = (cold.ours_init.pct(p), cold.hello_init.pct(p));
            let label = match target(p) {
                Some(_) => {
                    format!("init {name}: process start to first `/next` ({n_cold} cold starts)")
                }
                None => format!("init {name}"),
            };
            floor_row(
                &mut t,
                &label,
                ours,
                hello,
                &format!("{} hello world", ms(hello)),
                target(p),
            );
        }
        for (p, name) in [(0.50, "p50"), (0.95, "p95")] {
            let (ours, floor) = (cold.ours_first.pct(p), cold.bare_first.pct(p));
            let label = match target(p) {
                Some(_) => format!(
                    "first request {name}: connect + store in a fresh process ({n_cold} processes)"
                ),
                None => format!("first request {name}"),
            };
            let floor_text = format!("{} bare connect + INSERT", ms(floor));
            floor_row(&mut t, &label, ours, floor, &floor_text, target(p));
        }
        for (p, name) in [(0.50, "p50"), (0.95, "p95"), (0.99, "p99")] {
            let label = match target(p) {
                Some(_) => format!("warm {name} ({} requests)", warm.requests),
                None => format!("warm {name}"),
            };
            let floor_text = format!(
                "{} = hello {} + INSERT {bare_name} {}",
                ms(floor(p)),
                ms(warm.hello.pct(p)),
                ms(bare.pct(p))
            );
            floor_row(
                &mut t,
                &label,
                warm.ours.pct(p),
                floor(p),
                &floor_text,
                target(p),
            );
        }
        for (p, name) in [(0.50, "p50"), (0.95, "p95"), (0.99, "p99")] {
            let (ours, floor) = (warm.ours.pct(p), warm.hello_insert.pct(p));
            let label = format!("warm {name}, against the hello world that stores a row");
            floor_row(
                &mut t,
                &label,
                ours,
                floor,
                &format!("{} `hello_insert`", ms(floor)),
                None,
            );
        }
        let alone = warm.hello_insert.p50();
        row(
            &mut t,
            &[
                "warm p50 of the hello world that stores a row, against the sum",
                &format!("{} `hello_insert`", ms(alone)),
                &ms(floor(0.50)),
                &times(alone, floor(0.50)),
                "",
            ],
        );
        row(
            &mut t,
            &[
                "peak RSS (VmHWM)",
                &mb(ours_hwm),
                &format!("{} hello world", mb(hello_hwm)),
                &format!("{:.2}x", ratio(ours_hwm as f64, hello_hwm as f64)),
                &format!("< 16 MB: {}", met(ours_hwm < TARGET_RSS_BYTES)),
            ],
        );
        row(
            &mut t,
            &[
                &format!("release binary ({}, as built here)", std::env::consts::ARCH),
                &bytes(self.sizes.0),
                &format!("{} hello world", bytes(self.sizes.1)),
                &format!("{:.2}x", ratio(self.sizes.0 as f64, self.sizes.1 as f64)),
                "",
            ],
        );
        let zip = |size: &Result<u64, String>| match size {
            Ok(n) => format!("{} ({})", bytes(*n), mb(*n)),
            Err(e) => format!("failed: {e}"),
        };
        match &self.zips {
            Zips::Skipped(why) => {
                row(
                    &mut t,
                    &["zip arm64", why, "", "", "< 1.4 MB: not measured"],
                );
                row(&mut t, &["zip x86_64", why, "", "", ""]);
            }
            Zips::Built { arm64, x86_64 } => {
                let arm64_target = match arm64 {
                    Ok(n) => format!("< 1.4 MB: {}", met(*n < TARGET_ARM64_ZIP_BYTES)),
                    Err(_) => "< 1.4 MB: not measured".into(),
                };
                row(&mut t, &["zip arm64", &zip(arm64), "", "", &arm64_target]);
                row(&mut t, &["zip x86_64", &zip(x86_64), "", "", ""]);
            }
        }

        let first_with_api = cold.bare_first.p50() + cold.hello_first.p50();
        let short = if n_cold < LEAST_COLD || warm.requests < LEAST_WARM {
            format!(
                "\n**A short run**: the targets are meant for at least {LEAST_COLD} cold starts and {} warm \
                 requests.\n",
                grouped(LEAST_WARM as i128)
            )
        } else {
            String::new()
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "# Benchmarks\n\n\
             How close the function is to the floor of any Rust Lambda that stores a row: a report, not a test. The\n\
             command is at the end; every number comes from one run, on throwaway PostgreSQL {pg} clusters on\n\
             loopback, with our release `bootstrap` and the floor's hello world (`devtools/hello`: `lambda_runtime`'s\n\
             own loop, the same tokio setup and release profile) behind the same Lambda Runtime API test\n\
             server (`devtools/src/runtime_api.rs`). The database is reached over TCP with SCRAM-SHA-256 and no TLS,\n\
             except in the section on a 128 MB Lambda's share of a core, which reaches it as on RDS.\n\
             Cold starts alternate between the binaries and warm requests run in {BLOCKS} interleaved blocks, so\n\
             load from elsewhere on the machine falls on every side alike: the p50 ratios are steadier than the absolute\n\
             numbers. The tails (p95, p99) on a busy machine mostly measure waits for a CPU, and ours hands each\n\
             request between more threads than the hello world does (the `postgres` client lives on tokio's blocking\n\
             pool: docs/decisions.md, D6): compare tails across runs before reading much into one. The instruction\n\
             counts under callgrind do not depend on load.\n\n\
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
               the two ways to send it (below) was cheaper; the pX of the floor is the sum of the two pX. The\n  \
               function's statement also tells a repeat from a conflict (docs/decisions.md, D5) in the same round\n  \
               trip, so part of the distance is its price.\n\
             - **the hello world that stores a row** (`hello_insert`, `devtools/hello/src/bin/hello_insert.rs`): the\n  \
               same floor as one function, measured like ours: per request the hello world hands the bare insert,\n  \
               prepared once per connection, to the card's `postgres` client on tokio's blocking pool, and answers\n  \
               with the id; no decoding, no state check, no bounds, no log line. The sum above times the insert back\n  \
               to back in a loop, where the server's backend and the client never go idle; one insert per request\n  \
               comes after a pause and, on this machine, shares two CPUs with the Runtime API server. So the sum is\n  \
               not a floor any function reaches: the last row is the hello world that stores a row against it, and\n  \
               ours against `hello_insert` is what the function's own code costs.\n\
             - **peak RSS**: the highest VmHWM of any of our processes in the run, read from `/proc/<pid>/status`\n  \
               while it was alive (the warm one served {warm_total} requests). MB = 1,000,000 bytes.\n\
             - **zips**: `./build.sh --arch arm64|x86_64` (target/lambda/<arch>/deploy.zip), when the script exists.\n",
            pg = self.machine.server_version,
            warm_total = WARM_UP + warm.requests,
            hello_first = ms(cold.hello_first.p50()),
            first_with_api = ms(first_with_api),
            first_ratio = times(cold.ours_first.p50(), first_with_api),
        );
        out
    }

    fn cold128(&self) -> String {
        let mut out =
            String::from("\n## Cold callback under a 128 MB Lambda's share of a core\n\n");
        let c = match &self.cold128 {
            Section::Skipped(why) => {
                let _ = writeln!(out, "skipped: {why}");
                return out;
            }
            Section::Measured(c) => c,
        };
        let mut t = String::new();
        row(
            &mut t,
            &[
                &format!("cold callback: spawn to first answer ({} rounds)", c.rounds),
                "ours",
                "floor",
                "ours / floor",
                "target",
            ],
        );
        row(&mut t, &["---", "---:", "---:", "---:", "---"]);
        for (share, name) in [(&c.limited, "128 MB share"), (&c.full, "full CPU")] {
            for (p, pname) in [(0.50, "p50"), (0.95, "p95")] {
                let (ours, floor) = (share.ours.pct(p), share.floor.pct(p));
                let target = (std::ptr::eq(share, &c.limited) && pname == "p50")
                    .then_some(TARGET_COLD128_RATIO);
                let floor_text = format!("{} hello world + `bare_insert`", ms(floor));
                floor_row(
                    &mut t,
                    &format!("{name} {pname}"),
                    ours,
                    floor,
                    &floor_text,
                    target,
                );
            }
        }
        for (share, name) in [(&c.limited, "128 MB share"), (&c.full, "full CPU")] {
            for (p, pname) in [(0.50, "p50"), (0.95, "p95")] {
                let (ours, floor) = (share.ours.pct(p), share.hello_insert.pct(p));
                floor_row(
                    &mut t,
                    &format!("{name} {pname}, against the hello world that stores a row"),
                    ours,
                    floor,
                    &format!("{} `hello_insert`", ms(floor)),
                    None,
                );
            }
        }
        let mut parts = String::new();
        row(
            &mut parts,
            &[
                "part",
                "128 MB p50",
                "128 MB p95",
                "full CPU p50",
                "full CPU p95",
            ],
        );
        row(&mut parts, &["---", "---:", "---:", "---:", "---:"]);
        let mut line = |name: &str, pick: fn(&Share) -> &Samples| {
            let (l, f) = (pick(&c.limited), pick(&c.full));
            row(
                &mut parts,
                &[
                    name,
                    &ms(l.p50()),
                    &ms(l.pct(0.95)),
                    &ms(f.p50()),
                    &ms(f.pct(0.95)),
                ],
            );
        };
        line("ours: cold callback", |s| &s.ours);
        line("hello world: cold callback", |s| &s.hello);
        line(
            "`bare_insert`: connect + `INSERT ... RETURNING`, inside its process",
            |s| &s.bare,
        );
        line(
            "of which the connect (TLS configuration, TCP, TLS verify-full, SCRAM)",
            |s| &s.bare_connect,
        );
        line("floor: each round's hello world + `bare_insert`", |s| {
            &s.floor
        });
        line("`hello_insert`: cold callback", |s| &s.hello_insert);
        let throttled = match c.throttled {
            Some((periods, throttled, time)) => format!(
                "- **the share held**: the group's `cpu.stat` at the end says it was throttled in {} of the\n  \
                 {} periods it ran in, {:.1} s in all.\n",
                grouped(throttled.into()),
                grouped(periods.into()),
                time.as_secs_f64()
            ),
            None => String::new(),
        };
        let _ = write!(
            out,
            "A 128 MB Lambda gets {mem}/{full} of a vCPU. Here that share is a cgroup v1 `cpu` group,\n\
             `/sys/fs/cgroup/cpu/{group}`, with `cpu.cfs_quota_us` = {quota} per `cpu.cfs_period_us` = {period}\n\
             ({share:.1} % of one CPU), holding only the measured process: a wrapper shell writes `0` to the group's\n\
             `tasks` and then `exec`s the binary, so the share applies from the process's first instruction, init\n\
             included. The benchmark runs as root to make the group and removes it at the end. The database is\n\
             reached as on RDS: `PGHOST=localhost`, `PGSSLMODE=verify-full` with the test CA as `PGSSLROOTCERT`\n\
             (`devtools/src/certs.rs`) and a SCRAM password, for a role with the grants of `sql/grants.sql`, on a\n\
             cluster with `ssl = on` that takes that role over TLS only (`hostssl ... scram-sha-256`).\n\n\
             {t}\n\
             - **ours**: from spawning `bootstrap` to receiving its answer to its first invocation, a new code (the\n  \
               event is queued as the process starts): init, the state check, the connection (TLS verify-full,\n  \
               SCRAM) and the insert, which a connection's first request sends unnamed (`query_typed`, one round\n  \
               trip, as the floor does; the README, \"The database\").\n\
             - **floor**: the hello world's cold callback measured the same way, plus `bare_insert`\n  \
               (`devtools/src/bin/bare_insert.rs`) in a fresh process of its own: the TLS configuration from the\n  \
               CA file, a connect with the same crates (`postgres`, `tokio-postgres-rustls`, rustls with ring) and\n  \
               one `INSERT ... RETURNING` (`query_typed`, one round trip), timed inside the process so the floor\n  \
               does not count a second process start. A round's floor is that round's sum of the two; its pX is\n  \
               over those sums (not the sum of the parts' pX below).\n\
             - **the hello world that stores a row** (`hello_insert`): the floor as one function, measured as ours\n  \
               is: spawn to first answer, the same connect (TLS verify-full from the CA file, SCRAM) and the\n  \
               first insert unnamed. The sum above is kinder than any function can be, in two ways. Each of its\n  \
               parts starts with the quota whole (each measurement waits first), so its hello world spends none\n  \
               of the connect's quota. And `bare_insert`'s clock starts in `main`, after its process start has\n  \
               used part of the first period's quota, so a throttled wait before `main` is not counted: under\n  \
               the share the sum can leave out a whole step. A function, ours or `hello_insert`, pays start,\n  \
               init, connect and insert from one quota, timed from the spawn.\n\
             - **rounds**: each round runs the eight measurements (ours, hello world, `bare_insert` and\n  \
               `hello_insert`, at each share) in an order that moves on by one every round, so load falls on\n  \
               every part alike; a first round is not counted. Each measurement waits {settle} ms first (two\n  \
               periods: the quota is whole again).\n\
             - **steps**: a process that has used its {quota} us waits for the next period, so under the share\n  \
               times come in steps of up to {period_ms} ms, and a little more CPU time can move a percentile by a\n  \
               whole step. Waits that are not CPU (round trips, a handoff between threads) mostly hide in those\n  \
               steps; at full CPU they show.\n\
             - **full CPU**: the same through a wrapper shell that only `exec`s, in the benchmark's own cgroup.\n\
             {throttled}\n\
             {parts}",
            mem = cold128::MEMORY_MB,
            full = cold128::FULL_VCPU_MB,
            group = cold128::GROUP_NAME,
            quota = cold128::QUOTA_US,
            period = cold128::PERIOD_US,
            share = 100.0 * f64::from(cold128::QUOTA_US) / f64::from(cold128::PERIOD_US),
            settle = cold128::SETTLE.as_millis(),
            period_ms = cold128::PERIOD_US / 1000,
        );
        out
    }

    fn instructions(&self) -> String {
        let mut out = String::from("\n## Instructions per warm request\n\n");
        let i = match &self.instructions {
            Section::Skipped(why) => {
                let _ = writeln!(out, "skipped: {why}");
                return out;
            }
            Section::Measured(i) => i,
        };
        let (ours, hello) = (i.per_request(&i.ours), i.per_request(&i.hello));
        let hello_insert = i.per_request(&i.hello_insert);
        let mut t = String::new();
        row(
            &mut t,
            &[
                "instructions (callgrind `Ir`, every thread)",
                &format!("run of N1 = {} requests", i.n1),
                &format!("run of N2 = {} requests", i.n2),
                "per warm request",
            ],
        );
        row(&mut t, &["---", "---:", "---:", "---:"]);
        for (name, runs, per) in [
            ("ours", &i.ours, ours),
            ("hello world", &i.hello, hello),
            (
                "`hello_insert`: the hello world that stores a row",
                &i.hello_insert,
                hello_insert,
            ),
        ] {
            row(
                &mut t,
                &[
                    name,
                    &grouped(runs.short.into()),
                    &grouped(runs.long.into()),
                    &grouped(per.round() as i128),
                ],
            );
        }
        for (name, floor, per) in [
            (
                "ours - hello world: the function's own work",
                &i.hello,
                hello,
            ),
            (
                "ours - `hello_insert`: the function's own work beyond a bare insert",
                &i.hello_insert,
                hello_insert,
            ),
        ] {
            row(
                &mut t,
                &[
                    name,
                    &grouped(i128::from(i.ours.short) - i128::from(floor.short)),
                    &grouped(i128::from(i.ours.long) - i128::from(floor.long)),
                    &grouped((ours - per).round() as i128),
                ],
            );
        }
        let _ = write!(
            out,
            "A figure that load on the machine does not move: each binary runs under `valgrind --tool=callgrind`\n\
             ({valgrind}) behind its own Runtime API server, once serving N1 warm requests and once N2, every\n\
             request a new pair (ours on the plain TCP + SCRAM connection, as in the warm rows above). When the\n\
             server goes away, the function's next `/next` fails and the process exits on its own, and callgrind\n\
             writes its total. (I(N2) - I(N1)) / (N2 - N1) cancels start-up, the first connection and the exit.\n\n\
             {t}\n\
             The first difference is what the function does beyond the runtime's round trip: the event's\n\
             parameters, the state's signature, the statement on the client side, the answer and the log line; the\n\
             second leaves out the statement's client side and the blocking-pool hop, which `hello_insert` has too.\n\
             The server's side of the statement is in another process and is not counted. How the runs ended (N1,\n\
             N2): ours {oe}, hello world {he}, `hello_insert` {hie}.\n",
            valgrind = i.valgrind,
            oe = i.ours.endings.join(" and "),
            he = i.hello.endings.join(" and "),
            hie = i.hello_insert.endings.join(" and "),
        );
        out
    }

    /// Each part measured alone, and the server's share of each statement.
    fn parts(&self) -> String {
        let (cold, warm) = (&self.cold, &self.warm);
        let mut c = String::new();
        let mut line = |name: &str, s: &Samples| {
            if s.len() == 0 {
                row(&mut c, &[name, "n/a", "", "", "0"]);
                return;
            }
            row(
                &mut c,
                &[
                    name,
                    &ms(s.p50()),
                    &ms(s.pct(0.95)),
                    &ms(s.pct(0.99)),
                    &s.len().to_string(),
                ],
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
            "the hello world that stores a row (`hello_insert`), warm, through the Runtime API",
            &warm.hello_insert,
        );
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
                    "- the bare `INSERT ... RETURNING` (both ways, and `hello_insert`'s): {}",
                    per_call(calls, exec, plan)
                );
            }
            None => server.push_str("- the bare insert: not found in pg_stat_statements\n"),
        }
        let saved = warm.typed.p50().as_secs_f64() - warm.prepared.p50().as_secs_f64();
        let mut out = String::new();
        let _ = write!(
            out,
            "\n## The parts\n\n\
             | measured alone | p50 | p95 | p99 | n |\n\
             |---|---:|---:|---:|---:|\n\
             {c}\n\
             Server side, from `pg_stat_statements` over the timed warm blocks:\n\n\
             {server}\n\
             The two ways to send the insert, measured: the bare insert prepared once and reused costs {prepared} at\n\
             p50 through the client, the unnamed statement of `query_typed` {typed} ({saved:+.3} ms: parsing and\n\
             planning on every request). The function sends a connection's first insert unnamed (the cold request\n\
             counts every round trip) and from the second on a statement prepared once per connection; behind a\n\
             pooler that drops named statements it stays with the unnamed `query_typed`: the README, \"The database\".\n",
            prepared = ms(warm.prepared.p50()),
            typed = ms(warm.typed.p50()),
            saved = saved * 1000.0,
        );
        out
    }

    fn machine(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "\n## Machine\n\n\
             - {nproc} CPUs (`nproc`), {cpu}\n\
             - {kernel}; {rustc}; PostgreSQL {pg}\n\
             - load average before / after the run: {lb} / {la} (other builds may share the machine); the\n  \
               benchmark ran at niceness {nice} and took {minutes:.1} minutes, builds included\n\
             - code: {code}\n\
             - date: {date}\n\
             - command: `{command}`\n",
            command = self.command,
            pg = self.machine.server_version,
            nproc = std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu = cpu_model(),
            kernel = command_output("uname", &["-srm"]),
            rustc = command_output("rustc", &["--version"]),
            // SAFETY: getpriority only reads the calling process's scheduling priority.
            nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
            lb = self.machine.load_before,
            la = self.machine.load_after,
            minutes = self.machine.minutes,
            code = self.machine.code,
            date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        );
        out
    }
}
