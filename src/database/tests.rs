use std::time::Duration;

use super::settings::{DatabaseSecret, Endpoint};
use super::tls::{RootCerts, SslMode};
use super::*;
use crate::config::ConfigError;
use crate::extension::SecretsExtension;
use crate::secret::Secret;

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let var = lookup(pairs);
    Settings::from_lookup(&var, &SecretsExtension::from_lookup(&var).unwrap())
}

/// The variable a refused configuration names.
fn refused(pairs: &[(&str, &str)]) -> &'static str {
    settings(pairs).unwrap_err().variable
}

#[test]
fn settings_follow_libpq_defaults() {
    let s = settings(&[("PGUSER", "app")]).unwrap();
    assert_eq!(s.target(None), "app@localhost:5432/app");
    assert_eq!(s.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.statement_timeout, Duration::from_secs(5));
    assert_eq!(s.ssl_mode, SslMode::Prefer, "libpq's default");
    let s = settings(&[
        ("PGHOST", "db.example"),
        ("PGPORT", "6432"),
        ("PGUSER", "app"),
        ("PGPASSWORD", "hunter2"),
        ("PGDATABASE", "shop"),
        ("PGCONNECT_TIMEOUT", "1"),
        ("STATEMENT_TIMEOUT_SECONDS", "2"),
    ])
    .unwrap();
    assert_eq!(s.target(None), "app@db.example:6432/shop");
    assert_eq!(
        s.connect_timeout,
        Duration::from_secs(1),
        "libpq 17 has no two-second minimum"
    );
    assert_eq!(s.statement_timeout, Duration::from_secs(2));
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn settings_reject_what_libpq_would() {
    assert_eq!(refused(&[]), "PGUSER");
    assert!(settings(&[("USER", "me")]).is_ok(), "the login name");
    for port in ["x", "0", "65536", "5432,5433"] {
        assert_eq!(
            refused(&[("PGUSER", "a"), ("PGPORT", port)]),
            "PGPORT",
            "{port:?}"
        );
    }
    // libpq's failover list: refused by name, not sent to the resolver as one odd host name.
    assert_eq!(
        refused(&[("PGUSER", "a"), ("PGHOST", "db1.example,db2.example")]),
        "PGHOST"
    );
    let s = settings(&[("PGUSER", "a"), ("PGCONNECT_TIMEOUT", "0")]).unwrap();
    assert_eq!(
        s.connect_timeout,
        Duration::from_secs(5),
        "0 must not mean forever"
    );
    assert_eq!(
        refused(&[("PGUSER", "a"), ("PGSSLMODE", "verify")]),
        "PGSSLMODE"
    );
}

#[test]
fn a_timeout_out_of_range_is_refused_at_start_not_a_panic_per_request() {
    for name in ["PGCONNECT_TIMEOUT", "STATEMENT_TIMEOUT_SECONDS"] {
        for value in ["18446744073709551615", "901", "-1", "5s"] {
            assert_eq!(
                refused(&[("PGUSER", "a"), (name, value)]),
                name,
                "{name}={value}"
            );
        }
        let s = settings(&[("PGUSER", "a"), (name, "900")]).unwrap();
        assert_eq!(
            s.connect_timeout.max(s.statement_timeout),
            Duration::from_secs(900)
        );
    }
}

#[test]
fn verifying_modes_need_a_root_bundle_read_from_the_task_root() {
    assert_eq!(
        refused(&[("PGUSER", "a"), ("PGSSLMODE", "verify-full")]),
        "PGSSLROOTCERT"
    );
    let s = settings(&[
        ("PGUSER", "a"),
        ("PGSSLMODE", "verify-ca"),
        ("PGSSLROOTCERT", "global-bundle.pem"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
    ])
    .unwrap();
    assert_eq!(
        s.root_certs,
        Some(RootCerts::File("/var/task/global-bundle.pem".into()))
    );
    let s = settings(&[
        ("PGUSER", "a"),
        ("PGSSLROOTCERT", "/opt/ca.pem"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
    ])
    .unwrap();
    assert_eq!(s.root_certs, Some(RootCerts::File("/opt/ca.pem".into())));
}

const IAM: [(&str, &str); 5] = [
    ("PGUSER", "app"),
    ("PGAUTH", "iam"),
    ("AWS_REGION", "ap-northeast-2"),
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "secret"),
];

fn with(
    base: &[(&'static str, &'static str)],
    more: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn credentials_come_one_way_only() {
    assert_eq!(
        refused(&[("PGUSER", "a"), ("PGPASSWORD", "p"), ("PGSECRET_ID", "s")]),
        "PGSECRET_ID"
    );
    assert_eq!(
        refused(&[("PGUSER", "a"), ("PGAUTH", "kerberos")]),
        "PGAUTH"
    );
    assert_eq!(refused(&with(&IAM, &[("PGPASSWORD", "p")])), "PGAUTH");
    assert_eq!(refused(&IAM[..2]), "AWS_REGION");
}

#[test]
fn an_iam_token_goes_only_to_a_server_that_proved_who_it_is() {
    let bundle = ("PGSSLROOTCERT", "global-bundle.pem");
    let s = settings(&with(&IAM, &[bundle])).unwrap();
    assert_eq!(
        s.ssl_mode,
        SslMode::VerifyFull,
        "IAM defaults to verify-full"
    );
    assert!(settings(&with(&IAM, &[bundle, ("PGSSLMODE", "verify-ca")])).is_ok());
    // Encryption alone would hand the token to whoever answers: refused at start, naming what to set.
    for weak in ["disable", "prefer", "allow", "require"] {
        let e = settings(&with(&IAM, &[bundle, ("PGSSLMODE", weak)])).unwrap_err();
        assert_eq!(e.variable, "PGSSLMODE", "{weak}");
        assert!(e.problem.contains("verify-full"), "{e}");
    }
    assert_eq!(
        refused(&IAM),
        "PGSSLROOTCERT",
        "verify-full needs a root bundle"
    );
}

#[test]
fn the_system_store_needs_verify_full_as_in_libpq() {
    let system = ("PGSSLROOTCERT", "system");
    let s = settings(&[("PGUSER", "a"), system]).unwrap();
    assert_eq!(
        s.ssl_mode,
        SslMode::VerifyFull,
        "libpq 16's default with sslrootcert=system"
    );
    assert_eq!(s.root_certs, Some(RootCerts::System));
    for weak in ["verify-ca", "require", "prefer", "disable"] {
        let e = settings(&[("PGUSER", "a"), system, ("PGSSLMODE", weak)]).unwrap_err();
        assert_eq!(e.variable, "PGSSLMODE", "{weak}");
        assert!(e.problem.contains("system"), "{e}");
    }
    assert!(settings(&with(&IAM, &[system])).is_ok());
}

#[test]
fn a_secret_fills_what_the_variables_leave_out() {
    let s = settings(&[("PGSECRET_ID", "db"), ("PGDATABASE", "shop")]).unwrap();
    let secret = DatabaseSecret {
        username: Some("owner".into()),
        password: Secret::new("pw".into()),
        host: Some("db.rds.example".into()),
        port: Some(5433),
        dbname: Some("postgres".into()),
    };
    assert_eq!(
        s.endpoint(Some(&secret)).unwrap(),
        Endpoint {
            host: "db.rds.example".into(),
            port: 5433,
            user: "owner".into(),
            dbname: "shop".into(),
        }
    );
    let config = s
        .config(Some(&secret), std::time::SystemTime::now())
        .unwrap();
    assert_eq!(config.get_password(), Some(&b"pw"[..]));
}

#[test]
fn an_iam_token_is_the_password() {
    let s = settings(&[
        ("PGHOST", "db.abc.ap-northeast-2.rds.amazonaws.com"),
        ("PGUSER", "app"),
        ("PGAUTH", "iam"),
        ("AWS_REGION", "ap-northeast-2"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("PGSSLROOTCERT", "system"),
    ])
    .unwrap();
    let config = s.config(None, std::time::SystemTime::now()).unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    assert!(
        password.starts_with(
            "db.abc.ap-northeast-2.rds.amazonaws.com:5432/?Action=connect&DBUser=app&"
        ),
        "{password}"
    );
}

#[test]
fn parses_rds_json_and_plain_secrets() {
    let rds = r#"{"username":"app","password":"p@ss","engine":"postgres","host":"db.x","port":5432,"dbname":"shop"}"#;
    let secret = DatabaseSecret::parse("id", rds).unwrap();
    assert_eq!(secret.username.as_deref(), Some("app"));
    assert_eq!(secret.password.expose(), "p@ss");
    assert_eq!(
        (
            secret.host.as_deref(),
            secret.port,
            secret.dbname.as_deref()
        ),
        (Some("db.x"), Some(5432), Some("shop"))
    );
    let managed = DatabaseSecret::parse(
        "id",
        r#"{"username":"postgres","password":"x","port":"6432"}"#,
    )
    .unwrap();
    assert_eq!((managed.port, managed.host), (Some(6432), None));
    let plain = DatabaseSecret::parse("id", "just-a-password").unwrap();
    assert_eq!(
        (plain.password.expose().as_str(), plain.username),
        ("just-a-password", None)
    );
    assert!(!format!("{secret:?}").contains("p@ss"));
}

#[test]
fn malformed_json_is_an_error_without_the_text() {
    for bad in [
        r#"{"username":"app","password":"#,
        r#"{"username":"app"}"#,
        "{not json secret-text",
    ] {
        let e = DatabaseSecret::parse("db", bad).unwrap_err();
        assert!(e.contains("\"db\"") && !e.contains("secret-text"), "{e}");
    }
}

#[test]
fn a_host_that_does_not_resolve_is_named_as_such() {
    // An empty label: the resolver refuses it without asking a name server, so no network is needed.
    let Err(error) = postgres::Config::new()
        .host("db..example")
        .user("app")
        .connect(postgres::NoTls)
    else {
        panic!("connected to a host with no name");
    };
    let error = DatabaseError::from_postgres(&error);
    assert_eq!(error.failure, Failure::HostNotFound, "{}", error.detail);
    assert!(error.failure.hint().contains("PGHOST"));
}
