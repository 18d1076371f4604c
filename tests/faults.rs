//! The database under faults, through the built `bootstrap` and the Runtime API test server, on PostgreSQL 17: a
//! restart, a killed backend, a server down then up, a listener that never answers, a statement slowed past its
//! timeout, a wrong password, deadlines as local runners send them. Each asserts the answers, the rows, the log
//! line's cause, and that the process lives on. Time bounds derive from the configured timeouts; the time to each
//! 500 is printed (`cargo test --test faults -- --nocapture`) for the record.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use devtools::instance::{Answer, Instance, env};
use devtools::postgres::{self, Cluster, TestDatabase};
use devtools::runtime_api::epoch_ms;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");

fn start(db_env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Instance {
    let mut all = db_env;
    all.extend(env(extra));
    Instance::start(BOOTSTRAP, &all).unwrap()
}

/// The plain 500 of the contract, with `cause` as the log line's outcome and `check` in its hint.
fn assert_500(instance: &mut Instance, answer: &Answer, cause: &str, check: &str) {
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
}

fn expect_500(instance: &mut Instance, code: &str, cause: &str, check: &str) -> Answer {
    let answer = instance.callback(code).unwrap();
    assert_500(instance, &answer, cause, check);
    answer
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

/// The answer came when the configured bound ran out: not before it, and well before twice it.
fn took_the_bound(case: &str, answer: &Answer, bound: Duration) {
    report(case, answer.elapsed);
    assert!(
        answer.elapsed >= bound && answer.elapsed < bound * 2,
        "{case}: {:?} against a bound of {bound:?}",
        answer.elapsed
    );
}

fn reason(answer: &Answer) -> &str {
    answer.log["reason"].as_str().unwrap_or_default()
}

/// The backend process serving the connections named `app`.
fn backend(db: &TestDatabase, app: &str) -> Vec<i32> {
    db.connect()
        .unwrap()
        .query(
            "select pid from pg_stat_activity where application_name = $1",
            &[&app],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Accepts TCP connections (the kernel does) and never reads or writes a byte; counts what it accepted.
fn silent_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (port, accepted)
}

fn silent_env(port: u16) -> Vec<(String, String)> {
    env(&[
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", &port.to_string()),
        ("PGUSER", "app"),
        ("PGPASSWORD", "unused"),
    ])
}

/// A trigger that makes inserts of codes starting with `slow` sleep for half a minute.
fn slow_inserts(db: &TestDatabase) {
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
    // The same pair again after another restart: the retry cannot add a row.
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
    let connect_timeout = Duration::from_secs(5);
    let mut instance = start(db.env(), &[("PGCONNECT_TIMEOUT", "5")]);
    let answer = expect_500(
        &mut instance,
        "while-down",
        "connection_refused",
        "security groups",
    );
    report("server down (connection refused)", answer.elapsed);
    assert!(
        answer.elapsed < connect_timeout,
        "a refusal needs no timeout: {:?}",
        answer.elapsed
    );
    cluster.start_server().unwrap();
    expect_saved(&instance, "when-up");
    assert_eq!(codes(&db), ["when-up"]);
}

#[test]
fn a_listener_that_never_answers_holds_one_attempt_and_nothing_more() {
    let (port, accepted) = silent_listener();
    let connect_timeout = Duration::from_secs(2);
    let mut instance = start(silent_env(port), &[("PGCONNECT_TIMEOUT", "2")]);
    let first = expect_500(
        &mut instance,
        "black-hole",
        "connect_timeout",
        "network path",
    );
    took_the_bound(
        "listener that never answers, PGCONNECT_TIMEOUT=2",
        &first,
        connect_timeout,
    );
    assert!(
        reason(&first).contains("PGCONNECT_TIMEOUT (2 s)"),
        "{}",
        first.log
    );
    let before = instance.function.resources().unwrap();
    // The attempt is still hanging: later requests answer at once rather than start another one each.
    for i in 0..200 {
        let answer = expect_500(
            &mut instance,
            &format!("black-hole-{i}"),
            "connection_busy",
            "database",
        );
        assert!(answer.elapsed < connect_timeout, "{:?}", answer.elapsed);
    }
    let after = instance.function.resources().unwrap();
    eprintln!(
        "against a silent server: {before:?} after the first request, {after:?} after 200 more"
    );
    assert!(
        after.threads <= before.threads && after.descriptors <= before.descriptors,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection attempt in all"
    );
}

#[test]
fn a_real_deadline_bounds_the_request_before_its_own_timeouts_do() {
    let (port, _) = silent_listener();
    let mut instance = start(silent_env(port), &[("PGCONNECT_TIMEOUT", "30")]);
    let lambda_timeout = Duration::from_secs(3);
    let answer = instance
        .callback_by(
            "short-deadline",
            epoch_ms() + lambda_timeout.as_millis() as u64,
        )
        .unwrap();
    assert_500(&mut instance, &answer, "connect_timeout", "network path");
    report(
        "listener that never answers, a 3 s Lambda deadline",
        answer.elapsed,
    );
    // The function answers before Lambda's deadline, keeping time to send the answer.
    assert!(answer.elapsed < lambda_timeout, "{:?}", answer.elapsed);
    assert!(
        reason(&answer).contains("deadline"),
        "it names the bound that ran out: {}",
        answer.log
    );
}

#[test]
fn deadlines_from_local_runners_count_as_unknown_with_one_warning() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let instance = start(db.env(), &[]);
    let now = epoch_ms();
    let (past, far) = (
        (now - 5_000).to_string(),
        (now + 30 * 86_400_000).to_string(),
    );
    // cargo-lambda 1.9.2's duration, zero, the past, thirty days ahead; no header at all, and headers that are no
    // number of milliseconds (lambda_runtime 1.5's own loop panics on the first and exits on the others).
    let sent = [
        ("duration", Some("600000")),
        ("zero", Some("0")),
        ("past", Some(past.as_str())),
        ("far", Some(far.as_str())),
        ("missing", None),
        ("empty", Some("")),
        ("words", Some("abc")),
        ("negative", Some("-1")),
        ("fraction", Some("1796034872634.5")),
    ];
    for (code, deadline) in sent {
        let answer = instance
            .callback_with_deadline_header(code, deadline)
            .unwrap();
        assert_eq!(answer.status, 200, "{code}: {} {}", answer.body, answer.log);
    }
    let warnings = instance
        .function
        .output()
        .iter()
        .filter(|l| l.contains("not a time within Lambda's longest timeout"))
        .count();
    assert_eq!(warnings, 1, "one warning per process, not per request");
    assert_eq!(codes(&db), sent.map(|(code, _)| code));
}

#[test]
fn a_statement_past_its_timeout_is_cancelled_and_its_connection_never_reused() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    slow_inserts(&db);
    let app = format!("cancel-{}", db.name);
    let statement_timeout = Duration::from_secs(1);
    let mut instance = start(
        db.env(),
        &[("STATEMENT_TIMEOUT_SECONDS", "1"), ("PGAPPNAME", &app)],
    );
    expect_saved(&instance, "fast-before");
    let first_backend = backend(&db, &app);
    let answer = expect_500(&mut instance, "slow-insert", "statement_timeout", "locks");
    took_the_bound(
        "insert slowed by a trigger, STATEMENT_TIMEOUT_SECONDS=1",
        &answer,
        statement_timeout,
    );
    assert!(
        reason(&answer).contains("57014"),
        "the server cancelled it: {}",
        answer.log
    );
    // The next request is served at once, on a new connection: a cancel that came late could not reach it.
    let next = instance.callback("fast-after").unwrap();
    assert_eq!(next.status, 200, "{}", next.log);
    assert!(next.elapsed < statement_timeout, "{:?}", next.elapsed);
    let second_backend = backend(&db, &app);
    assert_eq!(second_backend.len(), 1);
    assert_ne!(
        first_backend, second_backend,
        "the cancelled connection was not reused"
    );
    assert_eq!(
        codes(&db),
        ["fast-before", "fast-after"],
        "nothing stored for the cancelled insert"
    );
}

#[test]
fn a_statement_timeout_on_the_role_bounds_the_statement_without_a_cancel() {
    // What works behind RDS Proxy, which ignores cancel requests: the server's own bound, set on the role.
    let db = postgres::shared().unwrap().create_database().unwrap();
    slow_inserts(&db);
    let role = format!("{}_bounded", db.name);
    db.create_writer(&role, "pw").unwrap();
    db.connect()
        .unwrap()
        .batch_execute(&format!("alter role {role} set statement_timeout = '1s'"))
        .unwrap();
    let app = format!("role-{}", db.name);
    let mut instance = start(
        db.env(),
        &[
            ("PGUSER", &role),
            ("PGPASSWORD", "pw"),
            ("STATEMENT_TIMEOUT_SECONDS", "20"),
            ("PGAPPNAME", &app),
        ],
    );
    expect_saved(&instance, "fast-before");
    let first_backend = backend(&db, &app);
    let answer = expect_500(&mut instance, "slow-insert", "statement_timeout", "locks");
    report(
        "insert slowed by a trigger, role statement_timeout 1s",
        answer.elapsed,
    );
    assert!(
        answer.elapsed < Duration::from_secs(20),
        "the role's bound, not the function's: {:?}",
        answer.elapsed
    );
    expect_saved(&instance, "fast-after");
    assert_eq!(
        backend(&db, &app),
        first_backend,
        "no cancel was sent: the connection stays in use"
    );
    assert_eq!(codes(&db), ["fast-before", "fast-after"]);
}

#[test]
fn a_wrong_password_is_reported_as_credentials() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let mut instance = start(db.env(), &[("PGPASSWORD", "not-the-password")]);
    for code in ["wrong-1", "wrong-2"] {
        let answer = expect_500(&mut instance, code, "auth_failed", "PGPASSWORD");
        report("wrong password", answer.elapsed);
    }
    let output = instance.function.output().join("\n");
    assert!(!output.contains("not-the-password"), "{output}");
    assert!(codes(&db).is_empty());
}

#[test]
fn a_timeout_out_of_range_is_a_misconfiguration_not_a_crash() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    for name in ["PGCONNECT_TIMEOUT", "STATEMENT_TIMEOUT_SECONDS"] {
        let mut instance = start(db.env(), &[(name, "18446744073709551615")]);
        for code in ["huge-1", "huge-2"] {
            let answer = instance.callback(code).unwrap();
            assert_eq!(answer.status, 500, "{}", answer.log);
            assert_eq!(answer.body["message"], "server misconfigured");
            assert!(reason(&answer).starts_with(name), "{}", answer.log);
        }
        assert!(
            instance.function.exited().is_none(),
            "{name}: the process must live on"
        );
    }
    assert!(codes(&db).is_empty());
}
