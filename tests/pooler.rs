//! The built `bootstrap` behind a real transaction-mode pooler: pgbouncer 1.18 (Debian's package), which hands
//! each transaction whichever server connection is free and keeps no named statements. The function prepares its
//! insert on a connection's second request; here the execute lands on the other server connection, the server
//! answers 26000, and the function must say so once and send the insert unnamed from then on, with every answer
//! and row as the contract says. A plain client through the same pgbouncer shows first that named statements
//! really are lost there, so the function's success is its fallback at work.
//!
//! Opt-in (`cargo test -- --ignored`, which `.ci/run` runs, installing pgbouncer): it needs pgbouncer, and fails
//! with the command to install it when it is missing.

use devtools::instance::{Instance, env};
use devtools::pgbouncer::{PgBouncer, SERVER_POOL};
use devtools::postgres::{SUPERUSER, SUPERUSER_PASSWORD, shared};
use devtools::{LOCAL_STATE_SECRET, sign_state};
use postgres::error::SqlState;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");

/// The function's warning when the server lost its prepared insert (src/database/link.rs).
const WARNING: &str = "the server does not keep prepared statements on this connection";

const CALLBACKS: usize = 10;

#[test]
#[ignore = "opt-in: needs pgbouncer (apt-get install pgbouncer; .ci/run installs it)"]
fn behind_pgbouncer_in_transaction_mode_the_insert_goes_unnamed_after_one_warning() {
    let db = shared().unwrap().create_database().unwrap();
    let role = format!("{}_writer", db.name);
    let password = "pooled-writer-password";
    db.create_writer(&role, password).unwrap();
    let bouncer = PgBouncer::start(&db, &[(&role, password)]).unwrap();

    // The pooler loses named statements: a plain client prepares one and executes it twice. The superuser's pool
    // (pgbouncer pools per database and user): its server connections have seen none of the function's statements.
    let superuser_pool = bouncer.fill_pool(SUPERUSER, SUPERUSER_PASSWORD).unwrap();
    let mut plain = bouncer.connect(SUPERUSER, SUPERUSER_PASSWORD).unwrap();
    let statement = plain.prepare("select pg_backend_pid()").unwrap();
    let executions: Vec<Result<i32, postgres::Error>> = (0..2)
        .map(|_| plain.query_one(&statement, &[]).map(|row| row.get(0)))
        .collect();
    let described: Vec<String> = executions
        .iter()
        .map(|execution| match execution {
            Ok(pid) => format!("ran on backend {pid}"),
            Err(e) => match e.as_db_error() {
                Some(db) => format!("SQLSTATE {}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            },
        })
        .collect();
    eprintln!(
        "a plain client through pgbouncer (server connections {superuser_pool:?}) prepared a statement, then \
         executed it twice: {described:?}"
    );
    assert!(
        executions.iter().any(
            |execution| execution.as_ref().err().and_then(postgres::Error::code)
                == Some(&SqlState::INVALID_SQL_STATEMENT_NAME)
        ),
        "pgbouncer kept the named statement: the test would prove nothing ({described:?})\n{}",
        bouncer.log()
    );
    drop(plain);

    // The function, connected through pgbouncer as the least-privileged role, its pool holding both server
    // connections (idle, taken in turn: the prepare and the execute land on different ones).
    let pool = bouncer.fill_pool(&role, password).unwrap();
    let mut settings = bouncer.env(&role, password);
    settings.extend(env(&[("PGAPPNAME", "pooled")]));
    let mut instance = Instance::start(BOOTSTRAP, &settings).unwrap();

    let mut ids = Vec::new();
    for i in 0..CALLBACKS {
        let answer = instance.callback(&format!("pooled-{i}")).unwrap();
        assert_eq!(
            answer.status, 200,
            "callback {i}: {} {}",
            answer.body, answer.log
        );
        assert_eq!(
            answer.log["outcome"], "saved",
            "callback {i}: {}",
            answer.log
        );
        ids.push(answer.body["id"].as_i64().expect("an id"));
    }
    // The same pair again: the same id, no new row.
    let repeat = instance.callback("pooled-0").unwrap();
    assert_eq!(repeat.status, 200, "{} {}", repeat.body, repeat.log);
    assert_eq!(repeat.log["outcome"], "repeat", "{}", repeat.log);
    assert_eq!(repeat.body["id"].as_i64(), Some(ids[0]), "the repeat's id");
    // A stored code with another state: a conflict, nothing stored.
    let conflict = instance
        .callback_with("pooled-1", &sign_state(LOCAL_STATE_SECRET, "mall:another"))
        .unwrap();
    assert_eq!(conflict.status, 409, "{} {}", conflict.body, conflict.log);
    assert_eq!(conflict.log["outcome"], "code_taken", "{}", conflict.log);
    assert!(
        instance.function.exited().is_none(),
        "the function must keep serving"
    );

    let expected: Vec<(i64, String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let code = format!("pooled-{i}");
            let state = sign_state(LOCAL_STATE_SECRET, &format!("mall:{code}"));
            (id, code, state)
        })
        .collect();
    assert_eq!(
        db.rows().unwrap(),
        expected,
        "the rows are the ten callbacks'"
    );

    let output = instance.function.output();
    let warnings: Vec<&String> = output.iter().filter(|l| l.contains(WARNING)).collect();
    for line in &warnings {
        eprintln!("the function's warning: {line}");
    }
    assert_eq!(
        warnings.len(),
        1,
        "one warning, on the request that found the statement gone:\n{}",
        output.join("\n")
    );
    // On the connection's second request, the first to prepare the insert: one request was answered before it.
    let answered_before = output
        .iter()
        .take_while(|l| !l.contains(WARNING))
        .filter(|l| l.contains("\"outcome\""))
        .count();
    assert_eq!(
        answered_before,
        1,
        "the warning comes with the second request:\n{}",
        output.join("\n")
    );

    // The role reached the server only through the pool: its server connections are the pool's two.
    let mut backends: Vec<i32> = db
        .connect()
        .unwrap()
        .query(
            "select pid from pg_stat_activity where usename = $1 and datname = $2",
            &[&role, &db.name],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    backends.sort_unstable();
    assert_eq!(backends, pool, "the role's server connections");
    eprintln!(
        "{CALLBACKS} callbacks, a repeat and a conflict through pgbouncer (transaction mode, {SERVER_POOL} server \
         connections {pool:?}): ids {ids:?}"
    );
}
