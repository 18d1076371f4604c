use std::time::Duration;

use super::settings::Endpoint;
use super::*;
use crate::secrets::DatabaseSecret;

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

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
    Settings::from_lookup(lookup(pairs))
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
    assert_eq!(s.connect_timeout, Duration::from_secs(2), "libpq's minimum");
    assert_eq!(s.statement_timeout, Duration::from_secs(2));
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn settings_reject_what_libpq_would() {
    assert!(settings(&[]).unwrap_err().contains("PGUSER"));
    assert!(settings(&[("USER", "me")]).is_ok(), "the login name");
    let e = settings(&[("PGUSER", "a"), ("PGPORT", "x")]).unwrap_err();
    assert!(e.contains("PGPORT"), "{e}");
    let s = settings(&[("PGUSER", "a"), ("PGCONNECT_TIMEOUT", "0")]).unwrap();
    assert_eq!(
        s.connect_timeout,
        Duration::from_secs(5),
        "0 must not mean forever"
    );
    let e = settings(&[("PGUSER", "a"), ("PGSSLMODE", "verify")]).unwrap_err();
    assert!(e.contains("PGSSLMODE"), "{e}");
}

#[test]
fn verifying_modes_need_a_root_bundle_read_from_the_task_root() {
    let e = settings(&[("PGUSER", "a"), ("PGSSLMODE", "verify-full")]).unwrap_err();
    assert!(e.contains("PGSSLROOTCERT"), "{e}");
    let s = settings(&[
        ("PGUSER", "a"),
        ("PGSSLMODE", "verify-ca"),
        ("PGSSLROOTCERT", "global-bundle.pem"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
    ])
    .unwrap();
    assert_eq!(
        s.root_certs,
        Some(tls::RootCerts::File("/var/task/global-bundle.pem".into()))
    );
    let s = settings(&[
        ("PGUSER", "a"),
        ("PGSSLROOTCERT", "/opt/ca.pem"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
    ])
    .unwrap();
    assert_eq!(
        s.root_certs,
        Some(tls::RootCerts::File("/opt/ca.pem".into()))
    );
}

#[test]
fn credentials_come_one_way_only() {
    let e = settings(&[("PGUSER", "a"), ("PGPASSWORD", "p"), ("PGSECRET_ID", "s")]).unwrap_err();
    assert!(e.contains("PGPASSWORD") && e.contains("PGSECRET_ID"), "{e}");
    let e = settings(&[("PGUSER", "a"), ("PGAUTH", "kerberos")]).unwrap_err();
    assert!(e.contains("PGAUTH"), "{e}");
    let iam = [
        ("PGUSER", "app"),
        ("PGAUTH", "iam"),
        ("AWS_REGION", "ap-northeast-2"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("PGSSLROOTCERT", "global-bundle.pem"),
    ];
    let s = settings(&iam).unwrap();
    assert_eq!(
        s.ssl_mode,
        SslMode::VerifyFull,
        "IAM defaults to verify-full"
    );
    let mut plain = iam.to_vec();
    plain.push(("PGSSLMODE", "prefer"));
    assert!(settings(&plain).unwrap_err().contains("TLS"));
    let mut both = iam.to_vec();
    both.push(("PGPASSWORD", "p"));
    assert!(settings(&both).is_err());
    let e = settings(&iam[..2]).unwrap_err();
    assert!(e.contains("AWS_REGION"), "{e}");
}

#[test]
fn a_secret_fills_what_the_variables_leave_out() {
    let s = settings(&[("PGSECRET_ID", "db"), ("PGDATABASE", "shop")]).unwrap();
    let secret = DatabaseSecret {
        username: Some("owner".into()),
        password: "pw".into(),
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
