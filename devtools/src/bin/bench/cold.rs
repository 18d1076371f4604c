//! Cold starts at full CPU on the plain (TCP, SCRAM, no TLS) cluster: init, process start to the first `/next`, and
//! the first request of a fresh process, each against its floor.

use std::path::Path;
use std::time::{Duration, Instant};

use ::postgres::types::Type;
use devtools::BARE_INSERT;
use devtools::postgres::TestDatabase;
use devtools::runtime_api::{Function, RuntimeApi};
use serde_json::Value;

use crate::common::{Pairs, SETTLE, Samples, TIMEOUT, check_saved, vm_hwm};

pub struct Cold {
    pub ours_init: Samples,
    pub hello_init: Samples,
    pub ours_first: Samples,
    pub hello_first: Samples,
    pub bare_connect: Samples,
    pub bare_first: Samples,
    pub ours_hwm: u64,
    pub hello_hwm: u64,
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

pub fn cold_starts(
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
