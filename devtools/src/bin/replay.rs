//! Runs the function end to end on the fixtures in `events/`: builds `bootstrap`, serves it the events through a
//! Lambda Runtime API server, and prints each response, the function's log line and the stored rows.
//!
//! With no PG* variable set it starts a throwaway PostgreSQL 17 cluster; otherwise it uses the database those
//! variables name (and applies `sql/schema.sql` to it, which is idempotent).
//!
//!     cargo run -p devtools --bin replay                 # every fixture, in order
//!     cargo run -p devtools --bin replay -- events/http-api/success.json ...

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use devtools::postgres::{self, Cluster, TestDatabase};
use devtools::runtime_api::{Function, RuntimeApi};
use devtools::{FIXTURES, LOCAL_STATE_SECRET, SHAPES, events_dir};
use serde_json::Value;

const PG_VARIABLES: [&str; 5] = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"];

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("replay: {e}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)` when a fixture got another status than the one it is there to show.
fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: Vec<(PathBuf, Option<u16>)> = if args.is_empty() {
        SHAPES
            .iter()
            .flat_map(|shape| {
                FIXTURES
                    .iter()
                    .map(move |(name, status)| (shape, name, *status))
            })
            .map(|(shape, name, status)| {
                (
                    events_dir().join(shape).join(format!("{name}.json")),
                    Some(status),
                )
            })
            .collect()
    } else {
        args.iter().map(|a| (PathBuf::from(a), None)).collect()
    };

    let bootstrap = bootstrap()?;
    let (_cluster, env, mut database) = database()?;
    let mut function_env = env.clone();
    if std::env::var_os("EXPECTED_STATE_SECRET").is_none() {
        println!(
            "EXPECTED_STATE_SECRET is not set: using the fixtures' local secret {LOCAL_STATE_SECRET:?}"
        );
        function_env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    }
    for name in [
        "EXPECTED_STATE_SECRET",
        "RUST_LOG",
        "AWS_LAMBDA_LOG_LEVEL",
        "PGCONNECT_TIMEOUT",
        "PGAPPNAME",
    ] {
        if let Ok(value) = std::env::var(name) {
            function_env.push((name.into(), value));
        }
    }

    let api = RuntimeApi::start()?;
    let function = Function::start(&bootstrap, &api, &function_env)?;
    let root = postgres::workspace_root();
    let mut as_expected = true;
    println!();
    for (path, expected) in &events {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let event: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let invocation = api.invoke(&event, Duration::from_secs(30))?;
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let status = invocation.status();
        let mark = match (expected, status) {
            (Some(e), Some(s)) if u64::from(*e) == s => "ok",
            (None, _) => "",
            _ => {
                as_expected = false;
                "UNEXPECTED"
            }
        };
        let body = invocation
            .response()?
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        println!("{shown:<40} {:>3}  {body}  {mark}", status.unwrap_or(0));
        // The request's line: its log fields here; its metrics (the EMF document in the same line) left out.
        if let Some(mut line) = function.request_log(&invocation.request_id)
            && let Some(fields) = line.as_object_mut()
        {
            fields.retain(|key, _| key.starts_with(|c: char| c.is_ascii_lowercase()));
            println!("{:<40}      log: {line}", "");
        }
    }

    println!("\nrows in cafe24.oauth_authorization_codes:");
    let rows = database
        .query(
            "select id, code, state, created_at::text from cafe24.oauth_authorization_codes order by id",
            &[],
        )
        .map_err(|e| e.to_string())?;
    println!("{:>4}  {:<24} {:<85} created_at", "id", "code", "state");
    for row in rows {
        let (id, code, state, created_at): (i64, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        println!("{id:>4}  {code:<24} {state:<85} {created_at}");
    }
    if !as_expected {
        eprintln!("\nsome fixtures did not get the status they are there to show");
    }
    Ok(as_expected)
}

/// `BOOTSTRAP` when set (another build, another architecture); otherwise a fresh debug build.
fn bootstrap() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("BOOTSTRAP") {
        return Ok(PathBuf::from(path));
    }
    let root = postgres::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building bootstrap ...");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--bin", "bootstrap"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err("cargo build --bin bootstrap failed".into());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug").join("bootstrap"))
}

type Database = (Option<Cluster>, Vec<(String, String)>, ::postgres::Client);

/// The database the PG* variables name, or a throwaway cluster when none is set.
fn database() -> Result<Database, String> {
    let configured: Vec<(String, String)> = PG_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect();
    if configured.is_empty() {
        println!("no PG* variable set: starting a throwaway PostgreSQL 17 cluster");
        let cluster = Cluster::start()?;
        let database: TestDatabase = cluster.create_database()?;
        println!(
            "PostgreSQL 17 on 127.0.0.1:{}, database {}",
            cluster.port(),
            database.name
        );
        let client = database.connect()?;
        return Ok((Some(cluster), database.env(), client));
    }
    let get = |name: &str| {
        configured
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let user = get("PGUSER")
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let mut config = ::postgres::Config::new();
    config
        .host(&get("PGHOST").unwrap_or_else(|| "localhost".into()))
        .port(get("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432))
        .user(&user)
        .dbname(&get("PGDATABASE").unwrap_or_else(|| user.clone()))
        .connect_timeout(Duration::from_secs(10));
    if let Some(password) = get("PGPASSWORD") {
        config.password(password);
    }
    let mut client = config
        .connect(::postgres::NoTls)
        .map_err(|e| format!("connecting with the PG* variables: {e}"))?;
    client
        .batch_execute(&postgres::schema_sql()?)
        .map_err(|e| format!("applying sql/schema.sql: {e}"))?;
    println!("using the database of the PG* variables; sql/schema.sql applied");
    Ok((None, configured, client))
}
