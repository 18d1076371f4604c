//! Nothing lost under load and faults: 16 `bootstrap` processes, each behind its own Runtime API server (16 warm
//! Lambda instances), 20,000 callbacks in all (10 % repeats of an earlier pair, 1 % conflicting replays, the rest
//! new), and the PostgreSQL 17 server restarted once in the middle. Afterwards the table is compared with every
//! answer given. Loopback only; bounded in count and time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use devtools::postgres::Cluster;
use devtools::runtime_api::{Function, RuntimeApi};
use devtools::{LOCAL_STATE_SECRET, fixture, sign_state};
use serde_json::Value;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");
const INSTANCES: usize = 16;
const CALLBACKS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    New,
    Repeat,
    Conflict,
}

#[derive(Debug, Clone)]
struct Answer {
    kind: Kind,
    code: String,
    state: String,
    /// For a repeat or a conflict: the index (in the same instance's list) of the request it replays.
    replays: Option<usize>,
    status: u64,
    id: Option<i64>,
    latency: Duration,
}

fn event(template: &Value, code: &str, state: &str) -> Value {
    let mut event = template.clone();
    event["rawQueryString"] = format!("code={code}&state={state}").into();
    event
}

/// A small deterministic generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn drive(
    instance: usize,
    api: &RuntimeApi,
    in_flight: &AtomicUsize,
    answered: &AtomicUsize,
    started: &Barrier,
) -> Vec<Answer> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (instance as u64 + 1));
    let mut answers: Vec<Answer> = Vec::with_capacity(CALLBACKS / INSTANCES);
    // Repeats and conflicts replay pairs that were sent as new.
    let mut originals: Vec<usize> = Vec::new();
    let template = fixture("http-api", "success").unwrap();
    started.wait();
    for n in 0..CALLBACKS / INSTANCES {
        let roll = rng.below(100);
        let (kind, code, state, replays) = if roll < 10 && !originals.is_empty() {
            let earlier = originals[rng.below(originals.len() as u64) as usize];
            (
                Kind::Repeat,
                answers[earlier].code.clone(),
                answers[earlier].state.clone(),
                Some(earlier),
            )
        } else if roll == 10 && !originals.is_empty() {
            let earlier = originals[rng.below(originals.len() as u64) as usize];
            let state = sign_state(LOCAL_STATE_SECRET, &format!("loadmall:i{instance}n{n}x"));
            (
                Kind::Conflict,
                answers[earlier].code.clone(),
                state,
                Some(earlier),
            )
        } else {
            let state = sign_state(LOCAL_STATE_SECRET, &format!("loadmall:i{instance}n{n}"));
            (Kind::New, format!("code-{instance}-{n}"), state, None)
        };
        in_flight.fetch_add(1, Ordering::SeqCst);
        let sent = Instant::now();
        let invocation = api.invoke(&event(&template, &code, &state), Duration::from_secs(30));
        in_flight.fetch_sub(1, Ordering::SeqCst);
        answered.fetch_add(1, Ordering::SeqCst);
        let invocation =
            invocation.unwrap_or_else(|e| panic!("instance {instance} request {n}: {e}"));
        if kind == Kind::New {
            originals.push(answers.len());
        }
        answers.push(Answer {
            kind,
            code,
            state,
            replays,
            status: invocation.status().unwrap_or(0),
            id: invocation.body().and_then(|b| b["id"].as_i64()),
            latency: sent.elapsed(),
        });
    }
    answers
}

#[test]
#[ignore = "opt-in: 20,000 callbacks through 16 instances take minutes on 2 cores (cargo test -- --ignored)"]
fn nothing_is_lost_under_load_and_a_restart() {
    let cluster = Cluster::start().unwrap();
    let db = cluster.create_database().unwrap();
    let mut env = db.env();
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    env.push(("PGCONNECT_TIMEOUT".into(), "2".into()));

    let instances: Vec<(RuntimeApi, Function)> = (0..INSTANCES)
        .map(|_| {
            let api = RuntimeApi::start().unwrap();
            let function = Function::start(Path::new(BOOTSTRAP), &api, &env).unwrap();
            (api, function)
        })
        .collect();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Barrier::new(INSTANCES + 1));

    let began = Instant::now();
    let answers: Vec<Vec<Answer>> = std::thread::scope(|scope| {
        let drivers: Vec<_> = instances
            .iter()
            .enumerate()
            .map(|(i, (api, _))| {
                let (in_flight, answered, started) = (
                    Arc::clone(&in_flight),
                    Arc::clone(&answered),
                    Arc::clone(&started),
                );
                scope.spawn(move || drive(i, api, &in_flight, &answered, &started))
            })
            .collect();
        started.wait();
        // The restart, once a third of the run is behind us, with requests in flight.
        while answered.load(Ordering::SeqCst) < CALLBACKS / 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let in_flight_at_stop = in_flight.load(Ordering::SeqCst);
        cluster.restart().unwrap();
        eprintln!("restarted the server with {in_flight_at_stop} requests in flight");
        assert!(
            in_flight_at_stop > 0,
            "the restart must meet requests in flight"
        );
        drivers.into_iter().map(|d| d.join().unwrap()).collect()
    });
    let elapsed = began.elapsed();

    // Every answer follows the contract.
    let mut answered_ok: HashMap<String, (i64, String)> = HashMap::new();
    let mut got_500: HashMap<String, Vec<String>> = HashMap::new();
    let (mut counts, mut latencies) = (HashMap::<u64, usize>::new(), Vec::new());
    for list in &answers {
        for a in list {
            *counts.entry(a.status).or_default() += 1;
            latencies.push(a.latency);
            let first = a.replays.map(|i| &list[i]);
            match (a.kind, a.status) {
                (_, 500) => got_500
                    .entry(a.code.clone())
                    .or_default()
                    .push(a.state.clone()),
                (Kind::New, 200) => {}
                (Kind::Repeat, 200) => {
                    if let Some(first) = first.filter(|f| f.status == 200) {
                        assert_eq!(
                            a.id, first.id,
                            "a repeat gets the id of the first save: {a:?}"
                        );
                    }
                }
                (Kind::Conflict, 409) => {}
                // A conflict can only be saved when the pair it conflicts with never was.
                (Kind::Conflict, 200) => assert_ne!(first.map(|f| f.status), Some(200), "{a:?}"),
                // Only when the first request's row was lost with its 500 and a conflicting pair got saved since.
                (Kind::Repeat, 409) => {
                    assert_ne!(first.map(|f| f.status), Some(200), "{a:?} first {first:?}")
                }
                _ => panic!("a wrong answer: {a:?}"),
            }
            if a.status == 200 {
                let id = a.id.expect("a 200 has an id");
                if let Some((known, state)) =
                    answered_ok.insert(a.code.clone(), (id, a.state.clone()))
                {
                    assert_eq!((known, &state), (id, &a.state), "one code, one row: {a:?}");
                }
            }
        }
    }

    // The table holds exactly what was answered: each 200 once, with its id and state; a stored code that got
    // no 200 only where its request got a 500 (the answer was lost, not the row); nothing else.
    let rows = db.rows().unwrap();
    let mut stored: HashMap<String, (i64, String)> = HashMap::new();
    for (id, code, state) in rows {
        assert!(
            stored.insert(code.clone(), (id, state)).is_none(),
            "{code} stored twice"
        );
    }
    for (code, (id, state)) in &answered_ok {
        assert_eq!(
            stored.get(code),
            Some(&(*id, state.clone())),
            "{code} answered 200 but stored otherwise"
        );
    }
    for (code, (_, state)) in &stored {
        if !answered_ok.contains_key(code) {
            let states = got_500
                .get(code)
                .unwrap_or_else(|| panic!("{code} stored but never answered 200 or 500"));
            assert!(
                states.contains(state),
                "{code} stored with a state no 500 carried"
            );
        }
    }
    let mut instances = instances;
    for (i, (_, function)) in instances.iter_mut().enumerate() {
        assert!(function.exited().is_none(), "instance {i} died");
        assert!(
            function.output().iter().all(|l| !l.contains("panicked")),
            "instance {i} panicked"
        );
    }

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let total: usize = counts.values().sum();
    assert_eq!(total, CALLBACKS);
    eprintln!(
        "{total} callbacks through {INSTANCES} instances in {:.2} s: {:.0}/s; latency p50 {:?} p95 {:?} p99 {:?}; \
         statuses {counts:?}; {} rows",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        stored.len()
    );
}
