//! The benchmark: how close the function is to the floor of any Rust Lambda that stores a row, measured side by
//! side in one run, on throwaway PostgreSQL 17 clusters it starts itself, through the same Runtime API server.
//! A report, never a timed assertion.
//!
//!     cargo run --release -p devtools --bin bench                          # print the report
//!     cargo run --release -p devtools --bin bench -- --write BENCHMARKS.md # and keep it
//!
//! Options: `--cold N` cold starts of each binary (default 100), `--warm N` timed warm requests of each kind
//! (default 3000), `--cold128 N` rounds of the cold callback under a 128 MB Lambda's CPU share (default 30, 0
//! skips it), `--callgrind N1,N2` warm requests of the two runs under callgrind (default 100,600) or
//! `--no-callgrind`, `--callgrind-keep DIR` (keep callgrind's files there, for `callgrind_annotate`), `--write PATH`
//! (keeps the file's history section), `--no-zip` (skip `./build.sh` even when it exists).
//!
//! What it compares (each module measures one section of the report):
//! - `cold`: init, process start to the first `/next`, our release `bootstrap` against a hello-world
//!   `lambda_runtime` binary (`devtools/hello`) built in the same run with the same profile; and the first request
//!   in a fresh process (connect + store) against a bare connect + first `INSERT ... RETURNING` with the same crate
//!   and connection kind, in this process;
//! - `warm`: warm latency against the hello world's warm latency through the same server plus the bare
//!   `INSERT ... RETURNING` round trip, sent both ways (`query_typed`, and a statement prepared once), and against
//!   `hello_insert`, the hello world that stores a row (the bare insert, prepared once, on the card's blocking
//!   client, per request);
//! - `cold128`: the cold callback, spawn to first answer over TLS verify-full + SCRAM, under a 128 MB Lambda's
//!   share of a core (a cgroup v1 `cpu` group; root only) and at full CPU, against the hello world's cold callback
//!   plus `bare_insert` (a fresh process's connect + insert, timed inside it), and against `hello_insert`'s cold
//!   callback (one process: the hello world that connects the same way and stores the row);
//! - `callgrind`: instructions per warm request, ours and the hello world's, under `valgrind --tool=callgrind`;
//! - `artifacts`: peak RSS (VmHWM, read during the runs), binary size, and the deploy zips when `./build.sh`
//!   exists.
//!
//! Warm requests run in interleaved blocks (ours, hello, the two bare loops, `hello_insert`, in turn), and cold
//! starts alternate, so a busy machine slows every side alike rather than whichever ran last.

mod artifacts;
mod callgrind;
mod cold;
mod cold128;
mod common;
mod report;
mod warm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use devtools::LOCAL_STATE_SECRET;
use devtools::postgres::{self, Cluster};

use artifacts::Zips;
use common::{Pairs, Section};
use report::{Machine, Report};

/// `--write` keeps everything from this line to the end of the existing file.
const HISTORY_MARKER: &str = "## History (kept as is by the bench)";

struct Options {
    cold: usize,
    warm: usize,
    cold128: usize,
    /// Warm requests of the two callgrind runs; `None` skips the section.
    callgrind: Option<(usize, usize)>,
    /// Where callgrind's output files are kept; `None`: a temporary directory, removed at the end.
    callgrind_keep: Option<PathBuf>,
    write: Option<PathBuf>,
    zips: bool,
    args: Vec<String>,
}

const USAGE: &str = "usage: bench [--cold N] [--warm N] [--cold128 N] [--callgrind N1,N2 | --no-callgrind] \
                     [--callgrind-keep DIR] \
                     [--write PATH] [--no-zip]";

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
        cold128: 30,
        callgrind: Some((100, 600)),
        callgrind_keep: None,
        write: None,
        zips: true,
        args: args.clone(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str, least: usize| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n >= least)
                .ok_or(format!("{name} takes a number, at least {least}"))
        };
        match arg.as_str() {
            "--cold" => options.cold = number("--cold", 1)?,
            "--warm" => options.warm = number("--warm", 1)?,
            "--cold128" => options.cold128 = number("--cold128", 0)?,
            "--callgrind" => {
                let value = args.next().unwrap_or_default();
                let pair = value
                    .split_once(',')
                    .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                    .filter(|&(n1, n2): &(usize, usize)| n1 > 0 && n2 > n1);
                options.callgrind = Some(pair.ok_or(format!(
                    "--callgrind takes N1,N2 with 0 < N1 < N2 (got {value:?})"
                ))?);
            }
            "--no-callgrind" => options.callgrind = None,
            "--callgrind-keep" => {
                options.callgrind_keep =
                    Some(args.next().ok_or("--callgrind-keep takes a path")?.into())
            }
            "--write" => options.write = Some(args.next().ok_or("--write takes a path")?.into()),
            "--no-zip" => options.zips = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?} ({USAGE})")),
        }
    }
    Ok(options)
}

fn run(options: &Options) -> Result<(), String> {
    let root = postgres::workspace_root();
    let started = std::time::Instant::now();
    let load_before = report::load_average();
    let code = report::code_version(&root);

    let bootstrap = artifacts::cargo_build(&root, &["--bin", "bootstrap"], "bootstrap")?;
    let hello = artifacts::cargo_build(&root, &["-p", "lambda-hello", "--bin", "hello"], "hello")?;
    let hello_insert = artifacts::cargo_build(
        &root,
        &["-p", "lambda-hello", "--bin", "hello_insert"],
        "hello_insert",
    )?;
    let bare_insert = artifacts::cargo_build(
        &root,
        &["-p", "devtools", "--bin", "bare_insert"],
        "bare_insert",
    )?;
    let sizes = (
        artifacts::file_size(&bootstrap)?,
        artifacts::file_size(&hello)?,
    );
    let zips = if !options.zips {
        Zips::Skipped("skipped (--no-zip)")
    } else if root.join("build.sh").exists() {
        Zips::Built {
            arm64: artifacts::build_zip(&root, "arm64"),
            x86_64: artifacts::build_zip(&root, "x86_64"),
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
    let cold = cold::cold_starts(options.cold, &bootstrap, &hello, &env, &db, &mut pairs)?;
    eprintln!("{} warm requests of each kind ...", options.warm);
    let warm = warm::warm_requests(
        options.warm,
        &bootstrap,
        &hello,
        &hello_insert,
        &env,
        &db,
        &mut pairs,
    )?;
    let instructions = match options.callgrind {
        None => Section::Skipped("--no-callgrind".into()),
        Some(runs) => callgrind::instructions(
            runs,
            &bootstrap,
            &hello,
            &hello_insert,
            &env,
            &mut pairs,
            options.callgrind_keep.as_deref(),
        )?,
    };
    drop(cluster);

    let cold128 = if options.cold128 == 0 {
        Section::Skipped("--cold128 0".into())
    } else {
        let binaries = cold128::Binaries {
            bootstrap: &bootstrap,
            hello: &hello,
            bare_insert: &bare_insert,
            hello_insert: &hello_insert,
        };
        cold128::measure(options.cold128, &binaries, &mut pairs)?
    };

    let report = Report {
        cold,
        warm,
        cold128,
        instructions,
        sizes,
        zips,
        machine: Machine {
            load_before,
            load_after: report::load_average(),
            server_version,
            minutes: started.elapsed().as_secs_f64() / 60.0,
            code,
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
        write_keeping_history(&path, &text)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `report` to `path`, followed by the history section of the file already there (from the
/// [`HISTORY_MARKER`] line to its end), which the benchmark never changes.
fn write_keeping_history(path: &Path, report: &str) -> Result<(), String> {
    let old = match std::fs::read_to_string(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut text = report.trim_end().to_owned();
    text.push_str("\n\n");
    match history(&old) {
        Some(history) => text.push_str(history),
        None => eprintln!(
            "{}: no line {HISTORY_MARKER:?}, so no history to keep",
            path.display()
        ),
    }
    std::fs::write(path, text.trim_end().to_owned() + "\n")
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The text from the [`HISTORY_MARKER`] line to the end, if the marker is there.
fn history(text: &str) -> Option<&str> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == HISTORY_MARKER {
            return Some(&text[offset..]);
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{HISTORY_MARKER, history};

    #[test]
    fn the_history_is_kept_from_its_marker_line_to_the_end() {
        let kept = format!("{HISTORY_MARKER}\n\nby hand\n");
        assert_eq!(
            history(&format!("# Benchmarks\n| old |\n\n{kept}")),
            Some(kept.as_str())
        );
        assert_eq!(history("# Benchmarks\n| old |\n"), None);
        // Only the whole line counts, not a mention of it.
        assert_eq!(history(&format!("see `{HISTORY_MARKER}`\n")), None);
    }
}
