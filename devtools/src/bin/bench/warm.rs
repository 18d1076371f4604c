//! Warm requests at full CPU on the plain cluster: ours and the hello world through the Runtime API, and the bare
//! insert sent both ways, in interleaved blocks; and the server's share of each statement.

use std::path::Path;
use std::time::{Duration, Instant};

use ::postgres::types::Type;
use devtools::BARE_INSERT;
use devtools::postgres::TestDatabase;
use devtools::runtime_api::{Function, RuntimeApi};
use serde_json::Value;

use crate::common::{Pairs, Samples, TIMEOUT, check_answer, vm_hwm};

/// Warm requests of each kind before timing starts: connections open, caches and the planner warm.
pub const WARM_UP: usize = 200;
/// Warm requests are timed in this many interleaved blocks: 100 of each kind at a time at the default 3000, so a
/// burst of load from elsewhere falls on every kind alike, while each bare loop still runs back to back.
pub const BLOCKS: usize = 30;
/// Ours, the hello world, the bare insert both ways, and the hello world that stores a row.
const KINDS: usize = 5;

pub struct Warm {
    pub ours: Samples,
    /// From our log lines (`elapsed_ms`, `database_ms`), for the timed requests: where our time goes.
    pub ours_handler: Samples,
    pub ours_database: Samples,
    pub hello: Samples,
    /// The hello world that stores a row (`devtools/hello/src/bin/hello_insert.rs`): the floor as a function.
    pub hello_insert: Samples,
    pub typed: Samples,
    pub prepared: Samples,
    pub ours_hwm: u64,
    pub hello_hwm: u64,
    pub requests: usize,
    pub server: ServerTimes,
}

/// Mean server-side time per call (execution, planning) from pg_stat_statements, over the timed warm blocks.
pub struct ServerTimes {
    /// Every statement on the table other than the bare insert that ran about once per request: the function's.
    pub ours: Vec<(String, i64, f64, f64)>,
    /// The bare insert, both ways together (the same statement text, so one entry).
    pub bare: Option<(i64, f64, f64)>,
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

pub fn warm_requests(
    requests: usize,
    bootstrap: &Path,
    hello: &Path,
    hello_insert: &Path,
    env: &[(String, String)],
    db: &TestDatabase,
    pairs: &mut Pairs,
) -> Result<Warm, String> {
    let ours_api = RuntimeApi::start()?;
    let ours = Function::start(bootstrap, &ours_api, env)?;
    let hello_api = RuntimeApi::start()?;
    let hello_fn = Function::start(hello, &hello_api, env)?;
    let insert_api = RuntimeApi::start()?;
    let _insert_fn = Function::start(hello_insert, &insert_api, env)?;
    let mut typed_client = db.connect()?;
    let mut prepared_client = db.connect()?;
    let prepared = prepared_client
        .prepare_typed(BARE_INSERT, &[Type::TEXT, Type::TEXT])
        .map_err(|e| e.to_string())?;

    let mut timed_ids = std::collections::HashSet::new();
    // Each kind: one request, its round trip.
    let mut one = |kind: usize, pairs: &mut Pairs, timed: bool| -> Result<Duration, String> {
        match kind {
            0 | 1 | 4 => {
                let (api, binary, must_save) = match kind {
                    0 => (&ours_api, bootstrap, true),
                    1 => (&hello_api, hello, false),
                    _ => (&insert_api, hello_insert, false),
                };
                let event = pairs.event();
                let sent = Instant::now();
                let invocation = api.invoke(&event, TIMEOUT)?;
                let elapsed = sent.elapsed();
                check_answer(binary, &invocation, must_save)?;
                if must_save && timed {
                    timed_ids.insert(invocation.request_id);
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
            3 => {
                let (code, state) = pairs.pair();
                let sent = Instant::now();
                prepared_client
                    .query(&prepared, &[&code, &state])
                    .map_err(|e| e.to_string())?;
                Ok(sent.elapsed())
            }
            _ => Err(format!("no kind {kind}")),
        }
    };

    for kind in 0..KINDS {
        for _ in 0..WARM_UP {
            one(kind, pairs, false)?;
        }
    }
    let mut admin = db.connect()?;
    admin
        .batch_execute("select pg_stat_statements_reset()")
        .map_err(|e| e.to_string())?;
    let mut samples: [Vec<Duration>; KINDS] = Default::default();
    let per_block = requests.div_ceil(BLOCKS);
    for block in 0..BLOCKS {
        for turn in 0..KINDS {
            let kind = (block + turn) % KINDS;
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
    let [ours_s, hello_s, typed_s, prepared_s, insert_s] = samples.map(Samples::new);
    Ok(Warm {
        ours: ours_s,
        ours_handler: Samples::new(handler),
        ours_database: Samples::new(database),
        hello: hello_s,
        hello_insert: insert_s,
        typed: typed_s,
        prepared: prepared_s,
        ours_hwm,
        hello_hwm,
        requests: per_block * BLOCKS,
        server,
    })
}
