//! Instructions per warm request, a figure that load on the machine does not move: each binary runs under
//! `valgrind --tool=callgrind` behind its own Runtime API server, once serving N1 warm requests and once N2, and
//! (I(N2) - I(N1)) / (N2 - N1) cancels start-up, the first connection and exit. `I` is callgrind's total of
//! executed instructions (`Ir`) over every thread of the process.
//!
//! With `--callgrind-keep DIR` the files stay in DIR, named `<binary>-<requests>.out`: `callgrind_annotate` on
//! both runs of a binary says where its instructions go (build with symbols for names:
//! `CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`).
//!
//! Callgrind writes its file when the process exits, not when it is killed: the server is dropped, the function's
//! next `/next` fails, and the Runtime API loop returns its error, so `bootstrap` and the hello world end on their
//! own. A process that does not gets SIGTERM, on which valgrind still writes the file; the report says how each
//! run ended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use devtools::postgres::temp_dir;
use devtools::runtime_api::{Function, RuntimeApi};

use crate::common::{Pairs, Section, check_answer};

/// Per request under valgrind (tens of times slower), the first one with its connection.
const TIMEOUT: Duration = Duration::from_secs(120);
/// How long a process may take to exit on its own once the server is gone.
const EXIT_WAIT: Duration = Duration::from_secs(60);

/// Totals of one binary's two runs.
pub struct Runs {
    pub short: u64,
    pub long: u64,
    /// How each run ended ("exit 1", or "SIGTERM" when it had to be told).
    pub endings: [String; 2],
}

pub struct Instructions {
    pub valgrind: String,
    pub n1: usize,
    pub n2: usize,
    pub ours: Runs,
    pub hello: Runs,
    pub hello_insert: Runs,
}

impl Instructions {
    /// (I(N2) - I(N1)) / (N2 - N1).
    pub fn per_request(&self, runs: &Runs) -> f64 {
        (runs.long as f64 - runs.short as f64) / (self.n2 - self.n1) as f64
    }
}

/// `(n1, n2)`: the warm requests of each binary's two runs.
pub fn instructions(
    (n1, n2): (usize, usize),
    bootstrap: &Path,
    hello: &Path,
    hello_insert: &Path,
    env: &[(String, String)],
    pairs: &mut Pairs,
    keep: Option<&Path>,
) -> Result<Section<Instructions>, String> {
    let valgrind = match Command::new("valgrind").arg("--version").output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => {
            let why = "valgrind not found (apt-get install valgrind)".to_owned();
            eprintln!("instructions per warm request: skipped: {why}");
            return Ok(Section::Skipped(why));
        }
    };
    eprintln!(
        "instructions per warm request: {valgrind} --tool=callgrind, {n1} and {n2} warm requests of each binary \
         (each run ends when its server goes away: an error about the closed connection is expected) ..."
    );
    let dir = match keep {
        Some(keep) => {
            std::fs::create_dir_all(keep).map_err(|e| format!("{}: {e}", keep.display()))?;
            OutDir {
                path: keep.to_path_buf(),
                remove: false,
            }
        }
        None => OutDir {
            path: temp_dir("callgrind")?,
            remove: true,
        },
    };
    let mut run = |binary: &Path, name: &str, requests: usize, must_save: bool| {
        let out = dir.path.join(format!("{name}-{requests}.out"));
        count(binary, env, requests, pairs, must_save, &out)
    };
    let mut both = |binary: &Path, name: &str, must_save: bool| -> Result<Runs, String> {
        let (short, short_end) = run(binary, name, n1, must_save)?;
        let (long, long_end) = run(binary, name, n2, must_save)?;
        Ok(Runs {
            short,
            long,
            endings: [short_end, long_end],
        })
    };
    let ours = both(bootstrap, "ours", true)?;
    let hello = both(hello, "hello", false)?;
    let hello_insert = both(hello_insert, "hello_insert", false)?;
    Ok(Section::Measured(Instructions {
        valgrind,
        n1,
        n2,
        ours,
        hello,
        hello_insert,
    }))
}

/// The callgrind files' directory, removed when dropped unless it was asked for.
struct OutDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// One run: `requests` warm requests, then the server goes away; the total of executed instructions and how the
/// process ended.
fn count(
    binary: &Path,
    env: &[(String, String)],
    requests: usize,
    pairs: &mut Pairs,
    must_save: bool,
    out: &Path,
) -> Result<(u64, String), String> {
    let api = RuntimeApi::start()?;
    let out_file = format!("--callgrind-out-file={}", out.display());
    let runner = ["valgrind", "--tool=callgrind", "-q", &out_file];
    let mut function = Function::start_with_runner(&runner, binary, &api, env)?;
    for _ in 0..requests {
        let invocation = api.invoke(&pairs.event(), TIMEOUT).map_err(|e| {
            format!(
                "{} under callgrind: {e}; its output: {}",
                binary.display(),
                function.output().join(" | ")
            )
        })?;
        check_answer(binary, &invocation, must_save)?;
    }
    drop(api);
    let ending = match wait_exit(&mut function, EXIT_WAIT) {
        Some(status) => match status.code() {
            Some(code) => format!("exit {code}"),
            None => status.to_string(),
        },
        None => {
            // SAFETY: signalling our own child, which has not been reaped (it has not exited).
            unsafe { libc::kill(function.pid() as libc::pid_t, libc::SIGTERM) };
            wait_exit(&mut function, EXIT_WAIT).ok_or_else(|| {
                format!(
                    "{} under callgrind did not exit, even on SIGTERM",
                    binary.display()
                )
            })?;
            "SIGTERM".to_owned()
        }
    };
    Ok((total(out)?, ending))
}

fn wait_exit(function: &mut Function, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = function.exited() {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `totals:` (or `summary:`) line of a callgrind output file: its first number is `Ir`.
fn total(out: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(out).map_err(|e| {
        format!(
            "{}: {e} (callgrind writes it when the process exits)",
            out.display()
        )
    })?;
    ["totals:", "summary:"]
        .iter()
        .find_map(|key| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .ok_or_else(|| format!("{}: no totals: or summary: line", out.display()))
}
