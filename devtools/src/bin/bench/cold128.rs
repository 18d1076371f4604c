//! The cold callback under a 128 MB Lambda's share of a core, and at full CPU beside it: from spawning the process
//! to receiving its answer to its first invocation (a new code), the database reached as on RDS (TLS verify-full to
//! `localhost` with a test CA, SCRAM) on a cluster that takes the function's user over TLS only.
//!
//! The share: Lambda gives a function one vCPU at 1,769 MB and a proportional share below, so 128/1769 of a CPU
//! at 128 MB. A cgroup v1 `cpu` group with that quota holds only the measured process, which joins it from a
//! wrapper shell (`echo 0 > tasks`, then `exec` of the binary: the shell joins itself, cheaply; writing a pid to
//! `cgroup.procs` from outside takes a global kernel lock that cost 6-38 ms per spawn on the machine this was
//! written on). Making the group takes root; without it, or without the v1 controller, the section is skipped.
//!
//! The floor, two ways. The sum: the hello world's cold callback under the same share, plus `bare_insert` (a fresh
//! process of its own under the same share: the same TLS crates' connect and one `INSERT ... RETURNING`, timed
//! inside it, so the floor does not count a second process start). And one process: `hello_insert`'s cold callback,
//! the hello world that connects the same way and stores the row. The sum's two parts each start with the group's
//! quota whole, where a function (ours, `hello_insert`) spends one quota on all of it. Each round runs ours and the
//! floors' parts at both shares in a rotated order, so load from elsewhere falls on every part alike.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devtools::LOCAL_STATE_SECRET;
use devtools::certs::TestCertificates;
use devtools::postgres::{Cluster, TestDatabase};
use devtools::runtime_api::{Function, RuntimeApi};
use serde_json::Value;

use crate::common::{Pairs, Samples, Section, TIMEOUT, check_answer};

/// Where this machine mounts the cgroup v1 `cpu` controller.
const CPU_CONTROLLER: &str = "/sys/fs/cgroup/cpu";
/// The group, made for the run and removed at its end (a run that was killed leaves it; the next one reuses it).
pub const GROUP_NAME: &str = "cafe24-bench-128mb";
pub const MEMORY_MB: u32 = 128;
/// The memory size at which Lambda gives a function one full vCPU.
pub const FULL_VCPU_MB: u32 = 1769;
pub const PERIOD_US: u32 = 20_000;
/// 20,000 x 128 / 1,769, rounded down: 1,447 us of CPU time in each 20 ms period, 7.2 % of one CPU.
pub const QUOTA_US: u32 = PERIOD_US * MEMORY_MB / FULL_VCPU_MB;
/// Before each measurement: two periods, so the group's quota is whole again and the last process is gone.
pub const SETTLE: Duration = Duration::from_millis(40);

/// The function's login on the TLS cluster: SCRAM, over TLS only, with the grants of `sql/grants.sql`.
const APP_USER: &str = "bench_app";
const APP_PASSWORD: &str = "bench-app-password";

pub struct Binaries<'a> {
    pub bootstrap: &'a Path,
    pub hello: &'a Path,
    pub bare_insert: &'a Path,
    pub hello_insert: &'a Path,
}

/// One CPU share's samples, one of each per round.
pub struct Share {
    /// Our cold callback: spawn to first answer.
    pub ours: Samples,
    /// The hello world's cold callback.
    pub hello: Samples,
    /// `bare_insert`'s connect + insert, timed inside its process.
    pub bare: Samples,
    /// Of which the connect (the TLS configuration from the CA file, TCP, TLS, SCRAM).
    pub bare_connect: Samples,
    /// Each round's hello + bare.
    pub floor: Samples,
    /// `hello_insert`'s cold callback: the hello world that connects and stores, one process.
    pub hello_insert: Samples,
}

pub struct Cold128 {
    pub rounds: usize,
    pub limited: Share,
    pub full: Share,
    /// From the group's `cpu.stat` at the end: (periods, periods throttled, time throttled).
    pub throttled: Option<(u64, u64, Duration)>,
}

#[derive(Clone, Copy)]
enum Part {
    Ours,
    Hello,
    Bare,
    HelloInsert,
}

/// The rounds' eight measurements, per share index (0: the 128 MB share, 1: full CPU); each round starts one
/// further along.
const JOBS: [(usize, Part); 8] = [
    (0, Part::Ours),
    (0, Part::Hello),
    (0, Part::Bare),
    (0, Part::HelloInsert),
    (1, Part::Ours),
    (1, Part::Hello),
    (1, Part::Bare),
    (1, Part::HelloInsert),
];

pub fn measure(
    rounds: usize,
    binaries: &Binaries,
    pairs: &mut Pairs,
) -> Result<Section<Cold128>, String> {
    let group = match CpuGroup::create() {
        Ok(group) => group,
        Err(why) => {
            eprintln!("cold callback under a 128 MB share: skipped: {why}");
            return Ok(Section::Skipped(why));
        }
    };
    let join = format!(
        "echo 0 > {}/tasks && exec \"$0\" \"$@\"",
        group.path.display()
    );
    let limited: [&str; 3] = ["/bin/sh", "-c", &join];
    let full: [&str; 3] = ["/bin/sh", "-c", "exec \"$0\" \"$@\""];
    if let Err(why) = group.check_joins(&limited) {
        eprintln!("cold callback under a 128 MB share: skipped: {why}");
        return Ok(Section::Skipped(why));
    }
    eprintln!(
        "cold callback under a 128 MB share: running as root, in the cgroup {} (cpu.cfs_quota_us {QUOTA_US} \
         per cpu.cfs_period_us {PERIOD_US}), removed at the end; {rounds} rounds ...",
        group.path.display()
    );
    eprintln!("starting a PostgreSQL 17 cluster with TLS ...");
    let server = TlsServer::start()?;
    let env = server.env();
    let runners = [&limited[..], &full[..]];

    // Per share: ours, hello, bare, bare's connect, hello_insert.
    let mut samples: [[Vec<Duration>; 5]; 2] = Default::default();
    // Round 0 warms the page cache and the server and is not counted.
    for round in 0..=rounds {
        let mut measured = [[Duration::ZERO; 5]; 2];
        for turn in 0..JOBS.len() {
            let (share, part) = JOBS[(round + turn) % JOBS.len()];
            let runner = runners[share];
            let got = &mut measured[share];
            match part {
                Part::Ours => {
                    got[0] = cold_callback(binaries.bootstrap, runner, &env, &pairs.event(), true)?
                }
                Part::Hello => {
                    got[1] = cold_callback(binaries.hello, runner, &env, &pairs.event(), false)?
                }
                Part::Bare => {
                    (got[2], got[3]) =
                        bare_insert(binaries.bare_insert, runner, &env, pairs.pair())?
                }
                Part::HelloInsert => {
                    let event = pairs.event();
                    got[4] = cold_callback(binaries.hello_insert, runner, &env, &event, false)?
                }
            }
        }
        if round > 0 {
            for (lists, values) in samples.iter_mut().zip(measured) {
                for (list, value) in lists.iter_mut().zip(values) {
                    list.push(value);
                }
            }
        }
    }
    let throttled = group.throttled();
    drop(group);
    drop(server);
    let [limited, full] = samples.map(|[ours, hello, bare, bare_connect, hello_insert]| {
        let floor = hello.iter().zip(&bare).map(|(h, b)| *h + *b).collect();
        Share {
            ours: Samples::new(ours),
            hello: Samples::new(hello),
            bare: Samples::new(bare),
            bare_connect: Samples::new(bare_connect),
            floor: Samples::new(floor),
            hello_insert: Samples::new(hello_insert),
        }
    });
    Ok(Section::Measured(Cold128 {
        rounds,
        limited,
        full,
        throttled,
    }))
}

/// A fresh process behind a fresh Runtime API server, its first event queued as it starts: from the spawn to the
/// reply's arrival. The process is killed and reaped before this returns, so the group is empty again.
fn cold_callback(
    binary: &Path,
    runner: &[&str],
    env: &[(String, String)],
    event: &Value,
    must_save: bool,
) -> Result<Duration, String> {
    let api = RuntimeApi::start()?;
    std::thread::sleep(SETTLE);
    let function = Function::start_with_runner(runner, binary, &api, env)?;
    let invocation = api.invoke(event, TIMEOUT).map_err(|e| {
        format!(
            "{}: {e}; its output: {}",
            binary.display(),
            function.output().join(" | ")
        )
    })?;
    let elapsed = function.started.elapsed();
    check_answer(binary, &invocation, must_save)?;
    drop(function);
    Ok(elapsed)
}

/// `bare_insert` in a fresh process through `runner`: (connect + insert, connect), as it timed them inside.
fn bare_insert(
    binary: &Path,
    runner: &[&str],
    env: &[(String, String)],
    (code, state): (String, String),
) -> Result<(Duration, Duration), String> {
    let (program, args) = runner.split_first().ok_or("no runner")?;
    std::thread::sleep(SETTLE);
    let output = Command::new(program)
        .args(args)
        .arg(binary)
        .args([code, state])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let line: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "{} printed {:?}: {e}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let nanos = |key: &str| {
        line[key]
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("{} printed no {key}: {line}", binary.display()))
    };
    Ok((nanos("total_ns")?, nanos("connect_ns")?))
}

/// The cgroup v1 `cpu` group with a 128 MB Lambda's share; removed when dropped.
struct CpuGroup {
    path: PathBuf,
}

impl CpuGroup {
    /// The group, or why it cannot be made here (the report's words for a skipped section).
    fn create() -> Result<CpuGroup, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(format!(
                "not root (a new group under the cgroup v1 cpu controller, {CPU_CONTROLLER}, takes root)"
            ));
        }
        let controller = Path::new(CPU_CONTROLLER);
        if !controller.join("cpu.cfs_quota_us").exists() {
            return Err(format!(
                "no cgroup v1 cpu controller at {CPU_CONTROLLER} (cgroup v2 only?)"
            ));
        }
        let path = controller.join(GROUP_NAME);
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let tasks = fs::read_to_string(path.join("tasks"))
                    .map_err(|e| format!("{}/tasks: {e}", path.display()))?;
                if !tasks.trim().is_empty() {
                    return Err(format!(
                        "{} is in use (tasks: {})",
                        path.display(),
                        tasks.split_whitespace().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
        let group = CpuGroup { path };
        group.set("cpu.cfs_period_us", PERIOD_US)?;
        group.set("cpu.cfs_quota_us", QUOTA_US)?;
        Ok(group)
    }

    fn set(&self, file: &str, value: u32) -> Result<(), String> {
        let path = self.path.join(file);
        fs::write(&path, value.to_string()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A process started through `runner` lands in the group (its `/proc/self/cgroup` says so).
    fn check_joins(&self, runner: &[&str]) -> Result<(), String> {
        let (program, args) = runner.split_first().ok_or("no runner")?;
        let output = Command::new(program)
            .args(args)
            .args(["/bin/cat", "/proc/self/cgroup"])
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let joined = text.lines().any(|line| {
            let mut fields = line.splitn(3, ':').skip(1);
            let (controllers, group) = (fields.next(), fields.next());
            controllers.is_some_and(|c| c.split(',').any(|c| c == "cpu"))
                && group == Some(&format!("/{GROUP_NAME}"))
        });
        if output.status.success() && joined {
            Ok(())
        } else {
            Err(format!(
                "a process did not join {} ({}; {}; its /proc/self/cgroup: {})",
                self.path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                text.lines().collect::<Vec<_>>().join(" ")
            ))
        }
    }

    /// The group's `cpu.stat`: periods, periods in which it was throttled, and the time it was throttled.
    fn throttled(&self) -> Option<(u64, u64, Duration)> {
        let stat = fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        Some((
            field("nr_periods ")?,
            field("nr_throttled ")?,
            Duration::from_nanos(field("throttled_time ")?),
        ))
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // Every measured process has been reaped; the kernel may take a moment to let go of the last one.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if Instant::now() >= until => {
                    eprintln!("bench: cannot remove {}: {e}", self.path.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// A PostgreSQL 17 cluster as RDS is reached: `ssl = on` with a certificate for `localhost` from a test CA, and the
/// function's user allowed over TLS only (`hostssl`), with a SCRAM password.
struct TlsServer {
    certs: TestCertificates,
    cluster: Cluster,
    db: TestDatabase,
}

impl TlsServer {
    fn start() -> Result<TlsServer, String> {
        let certs = TestCertificates::make()?;
        let cluster = Cluster::start_with(certs.tls_only(&[(APP_USER, "scram-sha-256")])?)?;
        let db = cluster.create_database()?;
        // Exactly what sql/grants.sql gives the function's role; the floors log in as the same role.
        db.create_writer(APP_USER, APP_PASSWORD)?;
        Ok(TlsServer { certs, cluster, db })
    }

    /// What ours, the hello world, `bare_insert` and `hello_insert` are started with.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("PGHOST", "localhost".to_owned()),
            ("PGPORT", self.cluster.port().to_string()),
            ("PGUSER", APP_USER.to_owned()),
            ("PGPASSWORD", APP_PASSWORD.to_owned()),
            ("PGDATABASE", self.db.name.clone()),
            ("PGSSLMODE", "verify-full".to_owned()),
            (
                "PGSSLROOTCERT",
                self.certs.path("ca.crt").display().to_string(),
            ),
            ("EXPECTED_STATE_SECRET", LOCAL_STATE_SECRET.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
