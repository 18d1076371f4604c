//! The built `bootstrap`, run the way Lambda runs it: a Runtime API server hands it the fixtures of `events/`
//! and collects its answers; PostgreSQL 17 behind it; the stored rows and the log lines checked afterwards.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use devtools::postgres::{self, TestDatabase};
use devtools::runtime_api::{Function, RuntimeApi};
use devtools::{FIXTURES, LOCAL_STATE_SECRET, SHAPES, fixture};
use serde_json::Value;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");
const TIMEOUT: Duration = Duration::from_secs(20);

fn env_for(db: &TestDatabase) -> Vec<(String, String)> {
    let mut env = db.env();
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    env
}

fn start(env: &[(String, String)]) -> (RuntimeApi, Function) {
    let api = RuntimeApi::start().unwrap();
    let function = Function::start(Path::new(BOOTSTRAP), &api, env).unwrap();
    (api, function)
}

#[test]
fn every_fixture_through_the_runtime_api() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let (api, mut function) = start(&env_for(&db));
    let mut request_ids = Vec::new();
    for shape in SHAPES {
        let mut saved_id = None;
        for (name, expected) in FIXTURES {
            let invocation = api.invoke(&fixture(shape, name).unwrap(), TIMEOUT).unwrap();
            let body = invocation.body().unwrap();
            assert_eq!(
                invocation.status(),
                Some(u64::from(expected)),
                "{shape}/{name}: {body}"
            );
            let headers = &invocation.response().unwrap()["headers"];
            assert_eq!(headers["Content-Type"], "application/json");
            assert_eq!(headers["Cache-Control"], "no-store");
            assert_eq!(headers["X-Content-Type-Options"], "nosniff");
            assert_eq!(headers["Referrer-Policy"], "no-referrer");
            match name {
                "success" => saved_id = body["id"].as_i64(),
                "repeat" => assert_eq!(body["id"].as_i64(), saved_id, "{shape}: repeat"),
                _ => {}
            }
            request_ids.push((invocation.request_id.clone(), expected));
        }
    }
    assert_eq!(db.rows().unwrap().len(), 3, "one row per shape");
    assert!(
        function.exited().is_none(),
        "the function must keep serving"
    );

    // Per request one JSON log line with a level, and one EMF line (written before the answer).
    for (request_id, status) in request_ids {
        function.request_metrics(&request_id).unwrap();
        let lines = function.lines_for(&request_id);
        let logs: Vec<&Value> = lines.iter().filter(|l| l.get("level").is_some()).collect();
        let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
        assert_eq!(logs.len(), 1, "{request_id}: {lines:?}");
        assert_eq!(metrics.len(), 1, "{request_id}: {lines:?}");
        let log = logs[0];
        assert_eq!(log["status"], status);
        assert_eq!(log["request_id"], request_id.as_str());
        assert!(log["elapsed_ms"].is_number());
        assert!(log["outcome"].is_string());
        let expected_level = match status {
            200 => "INFO",
            500.. => "ERROR",
            _ => "WARN",
        };
        assert_eq!(log["level"], expected_level);
        if status == 200 {
            assert!(
                log["id"].is_i64() && log["database_ms"].is_number(),
                "{log}"
            );
        }
        assert_eq!(metrics[0]["Callbacks"], 1);
    }
}

/// What a fixture's query holds that must never be logged: the code and the state's signature.
fn secrets_in(event: &Value) -> Vec<String> {
    let query = event
        .get("rawQueryString")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let params = event["queryStringParameters"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join("&")
        });
    let mut secrets = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("code", code)) if !code.is_empty() => secrets.push(code.to_owned()),
            Some(("state", state)) => {
                if let Some((_, signature)) = state.rsplit_once('.') {
                    secrets.push(signature.to_owned());
                }
            }
            _ => {}
        }
    }
    secrets
}

#[test]
fn logs_never_hold_the_code_the_signature_or_the_password_even_at_trace() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    // A row the server refuses: its error's DETAIL line would quote the row ("Failing row contains (...)").
    db.connect()
        .unwrap()
        .batch_execute(
            "alter table cafe24.oauth_authorization_codes add constraint no_leaks check (code not like 'leak%')",
        )
        .unwrap();
    let mut env = env_for(&db);
    env.push(("RUST_LOG".into(), "trace".into()));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "TRACE".into()));
    let (api, function) = start(&env);
    let mut secrets = vec![postgres::SUPERUSER_PASSWORD.to_owned()];
    let mut last = String::new();
    let refused = devtools::callback_event(
        "leakQ7vXr2",
        &devtools::sign_state(LOCAL_STATE_SECRET, "mall:leak"),
    )
    .unwrap();
    let mut events = vec![refused];
    for shape in SHAPES {
        for (name, _) in FIXTURES {
            events.push(fixture(shape, name).unwrap());
        }
    }
    for (i, event) in events.iter().enumerate() {
        let invocation = api.invoke(event, TIMEOUT).unwrap();
        if i == 0 {
            assert_eq!(invocation.status(), Some(500), "{:?}", invocation.body());
        }
        secrets.extend(secrets_in(event));
        last = invocation.request_id;
    }
    assert!(
        function.request_log(&last).is_some(),
        "the log lines are there"
    );
    let output = function.output().join("\n");
    assert!(
        output.contains("check constraint"),
        "the refused row's error is logged: {output}"
    );
    for secret in secrets {
        assert!(!output.contains(&secret), "{secret:?} appears in the logs");
    }
}

#[test]
fn without_a_state_secret_the_function_starts_and_refuses_every_request() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let (api, mut function) = start(&db.env());
    for (shape, name) in [
        ("http-api", "success"),
        ("rest-api", "success"),
        ("function-url", "missing-code"),
    ] {
        let invocation = api.invoke(&fixture(shape, name).unwrap(), TIMEOUT).unwrap();
        assert_eq!(invocation.status(), Some(500));
        assert_eq!(
            invocation.body().unwrap()["message"],
            "server misconfigured"
        );
    }
    assert!(db.rows().unwrap().is_empty());
    assert!(api.init_error().is_none());
    assert!(function.exited().is_none());
    let output = function.output().join("\n");
    assert!(
        output.contains("EXPECTED_STATE_SECRET: is not set"),
        "the log says why: {output}"
    );
}

#[test]
fn log_level_comes_from_lambda_and_metrics_are_never_filtered() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let mut env = env_for(&db);
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "ERROR".into()));
    env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let (api, function) = start(&env);
    let ok = api
        .invoke(&fixture("http-api", "success").unwrap(), TIMEOUT)
        .unwrap();
    let forged = api
        .invoke(&fixture("http-api", "forged-state").unwrap(), TIMEOUT)
        .unwrap();
    assert_eq!((ok.status(), forged.status()), (Some(200), Some(403)));
    for request_id in [&ok.request_id, &forged.request_id] {
        // The metric line comes last: once it is there, a log line would be too.
        assert!(
            function.request_metrics(request_id).is_some(),
            "the metric stays"
        );
        let lines = function.lines_for(request_id);
        assert!(
            lines.iter().all(|l| l.get("level").is_none()),
            "INFO and WARN are filtered: {lines:?}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.get("_aws").is_some()).count(),
            1,
            "the metric stays"
        );
    }
}

#[test]
fn one_line_per_request_at_any_level_that_shows_it() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    for asked in [
        None,
        Some(("RUST_LOG", "info")),
        Some(("AWS_LAMBDA_LOG_LEVEL", "INFO")),
        Some(("AWS_LAMBDA_LOG_LEVEL", "DEBUG")),
        Some(("RUST_LOG", "trace")),
    ] {
        let mut env = env_for(&db);
        env.extend(asked.map(|(name, level)| (name.to_owned(), level.to_owned())));
        let (api, function) = start(&env);
        let mut ids = Vec::new();
        for name in ["success", "forged-state"] {
            let invocation = api
                .invoke(&fixture("http-api", name).unwrap(), TIMEOUT)
                .unwrap();
            assert!(function.request_metrics(&invocation.request_id).is_some());
            ids.push(invocation.request_id);
        }
        // Besides the instance's start, nothing but the requests' own lines: one each.
        let output = function.output();
        let others: Vec<&String> = output
            .iter()
            .filter(|l| !l.contains(r#""target":"init""#) && !ids.iter().any(|id| l.contains(id)))
            .collect();
        assert!(others.is_empty(), "{asked:?}: {others:#?}");
        for id in &ids {
            let lines = output.iter().filter(|l| l.contains(id)).count();
            assert_eq!(lines, 1, "{asked:?}: {output:#?}");
        }
    }
}

#[test]
fn a_runtime_api_that_drops_its_connections_loses_no_invocation() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let (api, mut function) = start(&env_for(&db));
    api.drop_connections_after_replies();
    for _ in 0..20 {
        let invocation = api
            .invoke(&fixture("http-api", "forged-state").unwrap(), TIMEOUT)
            .unwrap();
        assert_eq!(invocation.status(), Some(403));
    }
    assert!(function.exited().is_none(), "{:#?}", function.output());
}

#[test]
fn the_connection_is_opened_lazily_and_reused() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let (api, _function) = start(&env_for(&db));
    let mut admin = db.connect().unwrap();
    let connections = |admin: &mut ::postgres::Client| -> i64 {
        admin
            .query_one(
                "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
    };
    api.wait_first_next(TIMEOUT).unwrap();
    assert_eq!(
        connections(&mut admin),
        0,
        "no connection before the first request"
    );
    for shape in SHAPES {
        api.invoke(&fixture(shape, "success").unwrap(), TIMEOUT)
            .unwrap();
    }
    assert_eq!(connections(&mut admin), 1, "one connection, reused");
}

#[test]
fn mint_state_makes_a_state_the_function_accepts() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let mint = |args: &[&str]| {
        let output = Command::new(BOOTSTRAP)
            .arg("mint-state")
            .args(args)
            .env("EXPECTED_STATE_SECRET", LOCAL_STATE_SECRET)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap().trim().to_owned(),
        )
    };
    // The README's first test vector.
    assert_eq!(
        mint(&["demo-mall:n0nce:1767225600"]),
        (
            Some(0),
            "demo-mall:n0nce:1767225600.QDSRfvDLa6c6tnc78IPPept6hLqjdighdsMPON9sPkQ".to_owned()
        )
    );
    let (code, state) = mint(&["--mall-id", "demomall"]);
    assert_eq!(code, Some(0));
    assert!(state.starts_with("demomall:"), "{state}");
    assert_eq!(mint(&["--mall-id", "Not-A-Mall"]).0, Some(2));
    assert_eq!(mint(&["bad payload"]).0, Some(2));
    let no_secret = Command::new(BOOTSTRAP)
        .args(["mint-state", "p"])
        .env_remove("EXPECTED_STATE_SECRET")
        .output()
        .unwrap();
    assert_eq!(no_secret.status.code(), Some(2));

    let (api, _function) = start(&env_for(&db));
    let mut event = fixture("http-api", "success").unwrap();
    event["rawQueryString"] = format!("code=minted&state={state}").into();
    let invocation = api.invoke(&event, TIMEOUT).unwrap();
    assert_eq!(invocation.status(), Some(200), "{:?}", invocation.body());
    assert_eq!(db.rows().unwrap()[0].2, state);
}

#[test]
fn the_least_privileged_role_keeps_the_whole_contract_and_reads_no_code() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let role = format!("{}_writer", db.name);
    db.create_writer(&role, "writer-password").unwrap();
    let mut env = env_for(&db);
    env.retain(|(k, _)| k != "PGUSER" && k != "PGPASSWORD");
    env.push(("PGUSER".into(), role.clone()));
    env.push(("PGPASSWORD".into(), "writer-password".into()));
    let (api, _function) = start(&env);
    // Every way the database answers: new, repeat (the same id), a code taken, a state taken.
    let pair = |code: &str, payload: &str| {
        devtools::callback_event(code, &devtools::sign_state(LOCAL_STATE_SECRET, payload)).unwrap()
    };
    let mut ids = Vec::new();
    for (event, expected) in [
        (pair("lp-code", "mall:lp-1"), 200),
        (pair("lp-code", "mall:lp-1"), 200),
        (pair("lp-code", "mall:lp-2"), 409),
        (pair("lp-other", "mall:lp-1"), 409),
    ] {
        let invocation = api.invoke(&event, TIMEOUT).unwrap();
        assert_eq!(
            invocation.status(),
            Some(expected),
            "{:?}",
            invocation.body()
        );
        ids.extend(invocation.body().and_then(|b| b["id"].as_i64()));
    }
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "a repeat gets the first id");
    assert_eq!(db.rows().unwrap().len(), 1);
    // What sql/grants.sql gives the role does not let it read what is stored.
    let mut as_writer = ::postgres::Config::new()
        .host("127.0.0.1")
        .port(db.port)
        .user(&role)
        .password("writer-password")
        .dbname(&db.name)
        .connect(::postgres::NoTls)
        .unwrap();
    for read in [
        "select code from cafe24.oauth_authorization_codes",
        "select state from cafe24.oauth_authorization_codes",
        "delete from cafe24.oauth_authorization_codes",
        "update cafe24.oauth_authorization_codes set claimed_at = now()",
    ] {
        let error = as_writer.batch_execute(read).unwrap_err();
        assert_eq!(
            error.code(),
            Some(&::postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{read}"
        );
    }
}

#[test]
fn metrics_get_a_line_of_their_own_where_lambda_would_drop_the_log_line() {
    // RUST_LOG lets INFO through here, but Lambda itself drops JSON lines below ERROR: a merged line would take
    // the metrics with it.
    let db = postgres::shared().unwrap().create_database().unwrap();
    let mut env = env_for(&db);
    env.push(("RUST_LOG".into(), "info".into()));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "ERROR".into()));
    let (api, function) = start(&env);
    let ok = api
        .invoke(&fixture("http-api", "success").unwrap(), TIMEOUT)
        .unwrap();
    assert_eq!(ok.status(), Some(200));
    let metrics = function.request_metrics(&ok.request_id).unwrap();
    assert!(metrics.get("level").is_none(), "{metrics}");
    let log = function.request_log(&ok.request_id).unwrap();
    assert_eq!(log["level"], "INFO");
    assert!(log.get("_aws").is_none(), "{log}");
}
