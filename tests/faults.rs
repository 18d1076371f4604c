//! D6 under faults, through the built `bootstrap` and the Runtime API test server, on PostgreSQL 17: a restart,
//! a killed backend, a server down then up, a listener that never answers, a statement slowed past its timeout,
//! a wrong password. Each asserts the answers, the rows, the log line's cause, and that the process lives on.
//! The time to each 500 is printed (`cargo test --test faults -- --nocapture`) for the record; the assertions
//! only bound it, as D6 asks: a clear error well inside API Gateway's 29 s, never a hang.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use devtools::instance::{Instance, env};
use devtools::postgres::{self, Cluster, TestDatabase};

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");

fn start(db_env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Instance {
    let mut all = db_env;
    all.extend(env(extra));
    Instance::start(BOOTSTRAP, &all).unwrap()
}

/// A callback that must fail with the plain 500 of D3, naming `cause` in the log; returns how long it took.
fn expect_500(instance: &mut Instance, code: &str, cause: &str, check: &str) -> Duration {
    let answer = instance.callback(code).unwrap();
    let (body, log) = (&answer.body, &answer.log);
    assert_eq!(answer.status, 500, "{body} {log}");
    assert_eq!(body["ok"], false);
    assert_eq!(
        body["message"], "Database unavailable: the code was not saved",
        "{body}"
    );
    assert_eq!(log["outcome"], cause, "{log}");
    let hint = log["check"].as_str().unwrap_or_default();
    assert!(
        hint.contains(check),
        "{cause}: {hint:?} should say {check:?}"
    );
    assert!(
        instance.function.exited().is_none(),
        "the process must live on"
    );
    answer.elapsed
}

fn expect_saved(instance: &Instance, code: &str) -> i64 {
    let answer = instance.callback(code).unwrap();
    assert_eq!(answer.status, 200, "{} {}", answer.body, answer.log);
    answer.body["id"].as_i64().unwrap()
}

fn codes(db: &TestDatabase) -> Vec<String> {
    db.rows().unwrap().into_iter().map(|(_, c, _)| c).collect()
}

fn report(case: &str, elapsed: Duration) {
    eprintln!(
        "time to 500, {case}: {:.0} ms",
        elapsed.as_secs_f64() * 1000.0
    );
}

#[test]
fn a_server_restart_between_requests_costs_one_reconnect() {
    let cluster = Cluster::start().unwrap();
    let db = cluster.create_database().unwrap();
    let instance = start(db.env(), &[]);
    let first = expect_saved(&instance, "before-restart");
    cluster.restart().unwrap();
    let second = expect_saved(&instance, "after-restart");
    assert!(second > first);
    // The same pair again after another restart: the retry cannot add a row (D5).
    cluster.restart().unwrap();
    assert_eq!(expect_saved(&instance, "after-restart"), second);
    assert_eq!(codes(&db), ["before-restart", "after-restart"]);
}

#[test]
fn a_terminated_backend_is_replaced_once() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let app = format!("faults-{}", db.name);
    let instance = start(db.env(), &[("PGAPPNAME", &app)]);
    expect_saved(&instance, "first");
    let mut admin = db.connect().unwrap();
    let killed = admin
        .query(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
            &[&app],
        )
        .unwrap();
    assert_eq!(killed.len(), 1, "one connection per instance");
    expect_saved(&instance, "second");
    let log = instance.function.output().join("\n");
    assert!(log.contains("reconnecting once"), "{log}");
    assert_eq!(codes(&db), ["first", "second"]);
}

#[test]
fn a_server_down_at_the_first_request_then_up() {
    let cluster = Cluster::start().unwrap();
    let db = cluster.create_database().unwrap();
    cluster.stop().unwrap();
    let mut instance = start(db.env(), &[]);
    let elapsed = expect_500(
        &mut instance,
        "while-down",
        "connection_refused",
        "security groups",
    );
    report("server down (connection refused)", elapsed);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    cluster.start_server().unwrap();
    expect_saved(&instance, "when-up");
    assert_eq!(codes(&db), ["when-up"]);
}

#[test]
fn a_listener_that_never_answers_is_given_up_at_the_connect_timeout() {
    // Accepts TCP connections (the kernel does) and never reads or writes a byte.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let env = vec![
        ("PGHOST".into(), "127.0.0.1".into()),
        ("PGPORT".into(), port),
        ("PGUSER".into(), "app".into()),
        ("PGPASSWORD".into(), "unused".into()),
    ];
    let mut instance = start(env, &[("PGCONNECT_TIMEOUT", "2")]);
    for code in ["black-hole-1", "black-hole-2"] {
        let elapsed = expect_500(&mut instance, code, "connect_timeout", "network path");
        report("listener that never answers, PGCONNECT_TIMEOUT=2", elapsed);
        assert!(
            elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(3500),
            "{elapsed:?}"
        );
    }
}

#[test]
fn a_statement_past_its_timeout_is_cancelled_and_stores_nothing() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    db.connect()
        .unwrap()
        .batch_execute(
            "create function slow_insert() returns trigger language plpgsql as $$
             begin
                 if new.code like 'slow%' then perform pg_sleep(30); end if;
                 return new;
             end $$;
             create trigger slow_insert before insert on cafe24.oauth_authorization_codes
                 for each row execute function slow_insert();",
        )
        .unwrap();
    let mut instance = start(db.env(), &[("STATEMENT_TIMEOUT_SECONDS", "1")]);
    expect_saved(&instance, "fast-before");
    let elapsed = expect_500(
        &mut instance,
        "slow-insert",
        "statement_timeout",
        "STATEMENT_TIMEOUT_SECONDS",
    );
    report(
        "insert slowed by a trigger, STATEMENT_TIMEOUT_SECONDS=1",
        elapsed,
    );
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
    // The connection survives the cancel: the next request is served at once, on it.
    let started = Instant::now();
    expect_saved(&instance, "fast-after");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(codes(&db), ["fast-before", "fast-after"]);
    assert!(
        !instance
            .function
            .output()
            .join("\n")
            .contains("reconnecting")
    );
}

#[test]
fn a_wrong_password_is_reported_as_credentials() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let mut instance = start(db.env(), &[("PGPASSWORD", "not-the-password")]);
    for code in ["wrong-1", "wrong-2"] {
        let elapsed = expect_500(&mut instance, code, "auth_failed", "PGPASSWORD");
        report("wrong password", elapsed);
    }
    let output = instance.function.output().join("\n");
    assert!(!output.contains("not-the-password"), "{output}");
    assert!(codes(&db).is_empty());
}
