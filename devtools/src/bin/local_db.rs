//! A throwaway PostgreSQL 17 database with the project's schema, for trying the function by hand with
//! `cargo lambda watch`: it writes the variables the function reads to an env file and keeps the database up
//! until it is stopped (Ctrl-C, SIGTERM, SIGHUP, or the end of its standard input: Ctrl-D, or a script closing
//! the pipe it holds). Then it stops the server, deletes its files and the env file.
//!
//!     cargo run -p devtools --bin local_db -- --env-file target/local-db.env
//!     cargo lambda watch --env-file target/local-db.env          # in another terminal

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use devtools::LOCAL_STATE_SECRET;
use devtools::postgres::Cluster;

const USAGE: &str = "usage: local_db --env-file PATH";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local_db: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    // Before any thread exists, so that every thread inherits the mask and only `wait_for_stop` takes them. A
    // signal during the start is kept until then: the cluster is stopped as soon as it is up.
    let signals = block_stop_signals()?;
    let env_file = env_file_argument()?;

    let cluster = Cluster::start()?;
    let database = cluster.create_database()?;
    let mut env = database.env();
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    write_env_file(&env_file, &env)?;
    println!(
        "local_db: PostgreSQL 17 on 127.0.0.1:{}, database {} with the schema of sql/; its variables are in {}. \
         Stop with Ctrl-C, SIGTERM or end of input.",
        cluster.port(),
        database.name,
        env_file.display()
    );

    let reason = wait_for_stop(signals);
    println!("local_db: {reason}: stopping PostgreSQL");
    let _ = std::fs::remove_file(&env_file);
    drop(cluster); // stops the server and removes its directory; the at-exit cleanup removes the rest
    Ok(())
}

fn env_file_argument() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    let mut env_file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--env-file" => {
                let path = args
                    .next()
                    .ok_or_else(|| format!("--env-file needs a path\n{USAGE}"))?;
                env_file = Some(PathBuf::from(path));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let env_file = env_file.ok_or_else(|| format!("--env-file is required\n{USAGE}"))?;
    // Said before the cluster starts rather than after.
    if let Some(dir) = env_file.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(format!("no directory {} for the env file", dir.display()));
    }
    Ok(env_file)
}

/// `KEY=VALUE` lines, the format of `cargo lambda watch --env-file`. Written to a temporary name and renamed,
/// so whoever waits for the file finds it whole, and only once the database accepts connections.
fn write_env_file(path: &Path, env: &[(String, String)]) -> Result<(), String> {
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write the env file {}: {e}", path.display()))
}

fn block_stop_signals() -> Result<libc::sigset_t, String> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
            0 => Ok(set),
            e => Err(format!("cannot block the stop signals (error {e})")),
        }
    }
}

/// Blocks until a stop signal arrives or standard input ends, and says which.
fn wait_for_stop(signals: libc::sigset_t) -> String {
    let (stop, stopped) = mpsc::channel::<String>();
    let on_signal = stop.clone();
    std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: sigwait reads the set and writes one int; the signals are blocked in every thread.
        let reason = match unsafe { libc::sigwait(&signals, &mut signal) } {
            0 => signal_name(signal),
            e => format!("sigwait failed (error {e})"),
        };
        let _ = on_signal.send(reason);
    });
    std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        // Input is ignored; only its end matters. A read error counts as the end.
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = stop.send("end of standard input".into());
    });
    stopped
        .recv()
        .unwrap_or_else(|_| "no way left to wait".into())
}

fn signal_name(signal: libc::c_int) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}
