//! Run-time secrets through the built `bootstrap`: secrets read at run time from a local server that speaks the Parameters
//! and Secrets extension's documented HTTP API, against PostgreSQL 17. Plain and RDS-managed JSON secrets,
//! a rotation, the extension down, a refused token, a missing or malformed secret, and the state key.

use devtools::instance::{Answer, Instance, env};
use devtools::postgres::{self, TestDatabase};
use devtools::secrets_extension::FakeSecretsExtension;
use devtools::sign_state;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");
const SESSION_TOKEN: &str = "session-token-of-the-role";

/// A database with a login role of its own, as the function would use.
fn database_with_role(password: &str) -> (TestDatabase, String) {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let role = format!("{}_app", db.name);
    db.create_writer(&role, password).unwrap();
    (db, role)
}

/// The function's environment: the extension's port and token, the database's address, and `extra`.
fn function_env(
    extension: &FakeSecretsExtension,
    db: &TestDatabase,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut all = extension.env();
    all.push(("PGPORT".into(), db.port.to_string()));
    all.extend(env(&[("PGHOST", "127.0.0.1"), ("PGDATABASE", &db.name)]));
    all.extend(env(extra));
    all
}

fn stored(db: &TestDatabase) -> Vec<String> {
    db.rows().unwrap().into_iter().map(|r| r.1).collect()
}

fn misconfigured(answer: &Answer, cause: &str, reason: &str) {
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.body["message"], "server misconfigured", "{answer:?}");
    assert_eq!(answer.log["outcome"], cause, "{answer:?}");
    let logged = answer.log["reason"].as_str().unwrap_or_default();
    assert!(logged.contains(reason), "{logged:?} should say {reason:?}");
}

#[test]
fn a_plain_secret_is_the_password_and_is_read_once() {
    let (db, role) = database_with_role("plain-password");
    let extension = FakeSecretsExtension::start(SESSION_TOKEN).unwrap();
    extension.set_secret("db-plain", "plain-password");
    let instance = Instance::start(
        BOOTSTRAP,
        &function_env(
            &extension,
            &db,
            &[("PGUSER", &role), ("PGSECRET_ID", "db-plain")],
        ),
    )
    .unwrap();
    for code in ["plain-1", "plain-2"] {
        let answer = instance.callback(code).unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(extension.reads("db-plain"), 1, "cached for the process");
    assert_eq!(stored(&db), ["plain-1", "plain-2"]);
    let output = instance.function.output().join("\n");
    assert!(!output.contains("plain-password"), "{output}");
}

#[test]
fn an_rds_managed_json_secret_gives_user_password_and_address() {
    let (db, role) = database_with_role("json-password");
    let extension = FakeSecretsExtension::start(SESSION_TOKEN).unwrap();
    let secret = serde_json::json!({
        "engine": "postgres",
        "username": role,
        "password": "json-password",
        "host": "127.0.0.1",
        "port": db.port,
        "dbname": db.name,
    });
    extension.set_secret("rds!db-1234", &secret.to_string());
    // Nothing but the secret's id: user, password, host, port and database all come from it.
    let mut all = extension.env();
    all.extend(env(&[("PGSECRET_ID", "rds!db-1234")]));
    let instance = Instance::start(BOOTSTRAP, &all).unwrap();
    let answer = instance.callback("json").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(stored(&db), ["json"]);
}

#[test]
fn a_rotated_password_is_read_again_once_and_the_next_request_succeeds() {
    let (db, role) = database_with_role("before-rotation");
    let extension = FakeSecretsExtension::start(SESSION_TOKEN).unwrap();
    extension.set_secret("db", "before-rotation");
    let app = format!("rotation-{}", db.name);
    let instance = Instance::start(
        BOOTSTRAP,
        &function_env(
            &extension,
            &db,
            &[
                ("PGUSER", &role),
                ("PGSECRET_ID", "db"),
                ("PGAPPNAME", &app),
            ],
        ),
    )
    .unwrap();
    assert_eq!(instance.callback("before").unwrap().status, 200);
    // Rotation: the role's password and the secret change; the open connection is then cut (a failover).
    let mut admin = db.connect().unwrap();
    admin
        .batch_execute(&format!("alter role {role} password 'after-rotation'"))
        .unwrap();
    extension.set_secret("db", "after-rotation");
    admin
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
            &[&app],
        )
        .unwrap();
    let answer = instance.callback("after").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(extension.reads("db"), 2, "one re-read after the refusal");
    assert_eq!(stored(&db), ["before", "after"]);
    let output = instance.function.output().join("\n");
    assert!(output.contains("secret read again"), "{output}");
}

#[test]
fn extension_failures_are_configuration_errors_that_store_nothing() {
    let (db, role) = database_with_role("pw");
    let extension = FakeSecretsExtension::start(SESSION_TOKEN).unwrap();
    extension.set_secret("malformed", r#"{"username": "x", "password": "leak-me"#);

    let down = postgres::free_port().unwrap().to_string();
    let mut all = function_env(&extension, &db, &[("PGUSER", &role), ("PGSECRET_ID", "db")]);
    all.push(("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT".into(), down));
    let answer = Instance::start(BOOTSTRAP, &all)
        .unwrap()
        .callback("down")
        .unwrap();
    misconfigured(&answer, "secret_unavailable", "did not answer");

    let mut all = function_env(&extension, &db, &[("PGUSER", &role), ("PGSECRET_ID", "db")]);
    all.push(("AWS_SESSION_TOKEN".into(), "another-token".into()));
    let answer = Instance::start(BOOTSTRAP, &all)
        .unwrap()
        .callback("token")
        .unwrap();
    misconfigured(&answer, "secret_unavailable", "AWS_SESSION_TOKEN");
    assert_eq!(extension.refused(), 1);

    let all = function_env(
        &extension,
        &db,
        &[("PGUSER", &role), ("PGSECRET_ID", "missing")],
    );
    let answer = Instance::start(BOOTSTRAP, &all)
        .unwrap()
        .callback("missing")
        .unwrap();
    misconfigured(&answer, "secret_unavailable", "ResourceNotFoundException");

    let all = function_env(
        &extension,
        &db,
        &[("PGUSER", &role), ("PGSECRET_ID", "malformed")],
    );
    let instance = Instance::start(BOOTSTRAP, &all).unwrap();
    let answer = instance.callback("malformed").unwrap();
    misconfigured(&answer, "secret_malformed", "not a JSON object");
    assert!(!instance.function.output().join("\n").contains("leak-me"));

    // A value and its _ID at once: refused, whatever they say.
    let all = function_env(
        &extension,
        &db,
        &[
            ("PGUSER", &role),
            ("PGSECRET_ID", "db"),
            ("PGPASSWORD", "pw"),
        ],
    );
    let answer = Instance::start(BOOTSTRAP, &all)
        .unwrap()
        .callback("both")
        .unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body["message"], "server misconfigured");
    assert!(stored(&db).is_empty());
}

#[test]
fn the_state_key_from_a_secret_is_read_once_and_never_for_a_forged_state() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let extension = FakeSecretsExtension::start(SESSION_TOKEN).unwrap();
    extension.set_secret("state-key", "a-key-kept-in-secrets-manager");
    let mut all = db.env();
    all.extend(extension.env());
    all.extend(env(&[("EXPECTED_STATE_SECRET_ID", "state-key")]));
    let instance = Instance::start(BOOTSTRAP, &all).unwrap();
    let state = sign_state("a-key-kept-in-secrets-manager", "mall:n");
    let answer = instance.callback_with("signed", &state).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    for code in ["forged-1", "forged-2"] {
        let forged = sign_state("a-guessed-key", &format!("mall:{code}"));
        assert_eq!(instance.callback_with(code, &forged).unwrap().status, 403);
    }
    assert_eq!(extension.reads("state-key"), 1);
    assert_eq!(stored(&db), ["signed"]);

    all.extend(env(&[("EXPECTED_STATE_SECRET", "also-a-value")]));
    let answer = Instance::start(BOOTSTRAP, &all)
        .unwrap()
        .callback_with("both", &state)
        .unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body["message"], "server misconfigured");
}
