//! Init time of built `bootstrap`s: from spawning the process to its first Runtime API `/next` (the end of a
//! Lambda cold start's init phase, minus the download and unpacking that Lambda does before it). No database is
//! needed: the function connects on its first request, not at init.
//!
//! ```sh
//! cargo run -p devtools --release --bin init_time -- [--runs N] [--runner 'qemu-aarch64 -L /usr/aarch64-linux-gnu'] BOOTSTRAP...
//! ```
//!
//! The binaries are started in turn (round robin), so a change in the machine's load hits them all alike. For each
//! one it prints its size and the min, median and 90th percentile of the init time.

use std::process::ExitCode;
use std::time::Duration;

use devtools::LOCAL_STATE_SECRET;
use devtools::runtime_api::{Function, RuntimeApi};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("init_time: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut runs = 50usize;
    let mut runner = String::new();
    let mut binaries = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--runner" => runner = args.next().ok_or("--runner needs a command")?,
            // Absolute, or `Command` would look a bare name up in PATH.
            _ => binaries.push(std::fs::canonicalize(&arg).map_err(|e| format!("{arg}: {e}"))?),
        }
    }
    if binaries.is_empty() {
        return Err("usage: init_time [--runs N] [--runner 'COMMAND ARGS'] BOOTSTRAP...".into());
    }
    let runner: Vec<&str> = runner.split_whitespace().collect();
    let env = vec![
        (
            "EXPECTED_STATE_SECRET".to_owned(),
            LOCAL_STATE_SECRET.to_owned(),
        ),
        ("PGHOST".to_owned(), "127.0.0.1".to_owned()),
        ("PGUSER".to_owned(), "postgres".to_owned()),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); binaries.len()];
    for _ in 0..runs {
        for (binary, times) in binaries.iter().zip(&mut times) {
            let api = RuntimeApi::start()?;
            let function = Function::start_with_runner(&runner, binary, &api, &env)?;
            let first_next = api
                .wait_first_next(Duration::from_secs(30))
                .ok_or_else(|| format!("{}: no /next within 30 s", binary.display()))?;
            times.push(first_next.duration_since(function.started));
        }
    }
    println!(
        "| binary | bytes | init min (ms) | init p50 (ms) | init p90 (ms) |\n|---|---:|---:|---:|---:|"
    );
    for (binary, times) in binaries.iter().zip(&mut times) {
        times.sort();
        let ms = |q: f64| {
            let i = ((times.len() - 1) as f64 * q).round() as usize;
            times[i].as_secs_f64() * 1000.0
        };
        let bytes = std::fs::metadata(binary).map_or(0, |m| m.len());
        println!(
            "| {} | {bytes} | {:.2} | {:.2} | {:.2} |",
            binary.display(),
            ms(0.0),
            ms(0.5),
            ms(0.9)
        );
    }
    Ok(())
}
