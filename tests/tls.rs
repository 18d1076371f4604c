//! TLS against a PostgreSQL 17 that, like RDS with `rds.force_ssl = 1`, accepts the function's user only
//! over TLS (`hostssl`), with a CA and a server certificate (for `localhost`) made at test time. Each case is a
//! fresh `bootstrap` behind the Runtime API test server, so each opens its connection with its own settings.

use devtools::certs::TestCertificates;
use devtools::instance::{Answer, Instance, env};
use devtools::postgres::{self, Cluster, TestDatabase};

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");
const APP_USER: &str = "app";
const APP_PASSWORD: &str = "app-password";
/// Trusted without a password, over TLS only: the stand-in for an RDS IAM user, whose token RDS checks.
const IAM_USER: &str = "iam_app";

struct TlsServer {
    certs: TestCertificates,
    cluster: Cluster,
    db: TestDatabase,
}

fn tls_server() -> TlsServer {
    let certs = TestCertificates::make().unwrap();
    // The tests' own superuser may use plain TCP; the function's users only TLS.
    let options = certs
        .tls_only(&[(APP_USER, "scram-sha-256"), (IAM_USER, "trust")])
        .unwrap();
    let cluster = Cluster::start_with(options).unwrap();
    let db = cluster.create_database().unwrap();
    db.create_writer(APP_USER, APP_PASSWORD).unwrap();
    // The IAM stand-in has no password: hba trusts it over TLS.
    let mut admin = db.connect().unwrap();
    admin
        .batch_execute(&format!("create role {IAM_USER} login"))
        .unwrap();
    admin
        .batch_execute(&postgres::grants_sql(IAM_USER).unwrap())
        .unwrap();
    TlsServer { certs, cluster, db }
}

impl TlsServer {
    fn callback(&self, code: &str, host: &str, settings: &[(&str, &str)]) -> Answer {
        let mut all = env(&[
            ("PGHOST", host),
            ("PGUSER", APP_USER),
            ("PGPASSWORD", APP_PASSWORD),
            ("PGDATABASE", &self.db.name),
        ]);
        all.push(("PGPORT".into(), self.cluster.port().to_string()));
        let mut settings = env(settings);
        // A bundle's file name, made absolute unless the case is about LAMBDA_TASK_ROOT.
        if !settings.iter().any(|(k, _)| k == "LAMBDA_TASK_ROOT") {
            for (name, value) in &mut settings {
                if name == "PGSSLROOTCERT" && value != "system" {
                    *value = self.certs.path(value).display().to_string();
                }
            }
        }
        all.retain(|(k, _)| !settings.iter().any(|(s, _)| s == k));
        all.extend(settings);
        Instance::start(BOOTSTRAP, &all)
            .unwrap()
            .callback(code)
            .unwrap()
    }
}

fn saved(answer: &Answer) -> bool {
    answer.status == 200 && answer.body["id"].is_i64()
}

fn refused(answer: &Answer, cause: &str, check: &str) {
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.log["outcome"], cause, "{answer:?}");
    let hint = answer.log["check"].as_str().unwrap_or_default();
    assert!(hint.contains(check), "{hint:?} should say {check:?}");
}

#[test]
fn a_handshake_that_fails_before_the_certificate_is_not_blamed_on_it() {
    let server = tls_server();
    // rustls speaks TLS 1.2 and 1.3 only: a server held to 1.1 ends the handshake with an alert.
    let mut admin = server.db.connect().unwrap();
    for sql in [
        "alter system set ssl_min_protocol_version = 'TLSv1'",
        "alter system set ssl_max_protocol_version = 'TLSv1.1'",
        "select pg_reload_conf()",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    let answer = server.callback("old-tls", "127.0.0.1", &[("PGSSLMODE", "require")]);
    refused(&answer, "tls_handshake_failed", "ssl_min_protocol_version");
    assert!(server.db.rows().unwrap().is_empty());
}

#[test]
fn prefer_goes_on_without_tls_where_libpq_does() {
    let server = tls_server();
    // The tests' superuser may log in with or without TLS; a certificate from another CA fails the chain check.
    let admin = server.db.env();
    let var = |name: &str| admin.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let (user, password) = (var("PGUSER"), var("PGPASSWORD"));
    let settings = [
        ("PGUSER", user.as_str()),
        ("PGPASSWORD", password.as_str()),
        ("PGSSLROOTCERT", "other-ca.crt"),
    ];
    let answer = server.callback("plain-after-tls", "127.0.0.1", &settings);
    assert!(saved(&answer), "{answer:?}");
    // Under require the same refusal is final.
    let answer = server.callback(
        "no-plain-under-require",
        "127.0.0.1",
        &[
            settings[0],
            settings[1],
            settings[2],
            ("PGSSLMODE", "require"),
        ],
    );
    refused(&answer, "tls_rejected", "PGSSLROOTCERT");
}

#[test]
fn every_sslmode_against_a_server_that_requires_tls() {
    let server = tls_server();
    let mode = |m| ("PGSSLMODE", m);
    let ok = [
        ("prefer", "127.0.0.1", vec![]),
        ("require", "127.0.0.1", vec![mode("require")]),
        // The certificate names localhost only: verify-ca checks the chain, not the name.
        (
            "verify-ca",
            "127.0.0.1",
            vec![mode("verify-ca"), ("PGSSLROOTCERT", "ca.crt")],
        ),
        (
            "verify-full",
            "localhost",
            vec![mode("verify-full"), ("PGSSLROOTCERT", "ca.crt")],
        ),
        // libpq: require with a root bundle given verifies the chain.
        (
            "require-with-ca",
            "127.0.0.1",
            vec![mode("require"), ("PGSSLROOTCERT", "ca.crt")],
        ),
        // And so does prefer, the default.
        (
            "prefer-with-ca",
            "127.0.0.1",
            vec![("PGSSLROOTCERT", "ca.crt")],
        ),
    ];
    for (code, host, settings) in &ok {
        let answer = server.callback(code, host, settings);
        assert!(saved(&answer), "{code}: {answer:?}");
    }

    let answer = server.callback("disable", "127.0.0.1", &[mode("disable")]);
    refused(&answer, "tls_required", "requires TLS");
    let rejected = [
        (
            "wrong-host",
            "127.0.0.1",
            vec![mode("verify-full"), ("PGSSLROOTCERT", "ca.crt")],
        ),
        (
            "wrong-ca-full",
            "localhost",
            vec![mode("verify-full"), ("PGSSLROOTCERT", "other-ca.crt")],
        ),
        (
            "wrong-ca",
            "localhost",
            vec![mode("verify-ca"), ("PGSSLROOTCERT", "other-ca.crt")],
        ),
        (
            "wrong-ca-require",
            "localhost",
            vec![mode("require"), ("PGSSLROOTCERT", "other-ca.crt")],
        ),
        // prefer tries again without TLS, which this server refuses: the certificate is what to fix.
        (
            "wrong-ca-prefer",
            "localhost",
            vec![("PGSSLROOTCERT", "other-ca.crt")],
        ),
    ];
    for (code, host, settings) in &rejected {
        let answer = server.callback(code, host, settings);
        refused(&answer, "tls_rejected", "PGSSLROOTCERT");
    }
    let stored: Vec<String> = server.db.rows().unwrap().into_iter().map(|r| r.1).collect();
    let expected: Vec<&str> = ok.iter().map(|(code, _, _)| *code).collect();
    assert_eq!(stored, expected);
}

#[test]
fn a_relative_root_bundle_is_read_from_the_function_root() {
    let server = tls_server();
    let task_root = server.certs.dir.display().to_string();
    let settings = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", "ca.crt"),
        ("LAMBDA_TASK_ROOT", task_root.as_str()),
    ];
    let answer = server.callback("relative", "localhost", &settings);
    assert!(saved(&answer), "{answer:?}");
}

#[test]
fn iam_authentication_goes_over_verified_tls() {
    let server = tls_server();
    let mut all = env(&[
        ("PGHOST", "localhost"),
        ("PGUSER", IAM_USER),
        ("PGDATABASE", &server.db.name),
        ("PGAUTH", "iam"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "session-token"),
    ]);
    all.push(("PGPORT".into(), server.cluster.port().to_string()));
    all.push((
        "PGSSLROOTCERT".into(),
        server.certs.path("ca.crt").display().to_string(),
    ));
    // verify-full by default: the first request pays TLS, the token's signature and the insert.
    let instance = Instance::start(BOOTSTRAP, &all).unwrap();
    let first = instance.callback("iam-first").unwrap();
    assert!(saved(&first), "{first:?}");
    eprintln!(
        "first request with PGAUTH=iam over verify-full TLS: {:.1} ms",
        first.elapsed.as_secs_f64() * 1000.0
    );
    // Any mode that does not verify the server would hand the token (a credential for 15 minutes) to whoever
    // answers: here a server whose certificate names another host. Refused at start, before any connection.
    let connections = |server: &TlsServer| -> i64 {
        server
            .db
            .connect()
            .unwrap()
            .query_one(
                "select count(*) from pg_stat_activity where usename = $1",
                &[&IAM_USER],
            )
            .unwrap()
            .get(0)
    };
    drop(instance);
    // The first instance's connection ends with its process; wait for the server to see that.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while connections(&server) > 0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(connections(&server), 0);
    let mut weak = all.clone();
    weak.retain(|(k, _)| k != "PGSSLROOTCERT" && k != "PGHOST");
    weak.push(("PGHOST".into(), "127.0.0.1".into()));
    for mode in ["prefer", "require"] {
        let mut settings = weak.clone();
        settings.push(("PGSSLMODE".into(), mode.into()));
        let answer = Instance::start(BOOTSTRAP, &settings)
            .unwrap()
            .callback("iam-weak")
            .unwrap();
        assert_eq!(answer.status, 500, "{mode}");
        assert_eq!(answer.body["message"], "server misconfigured");
        let reason = answer.log["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("PGSSLMODE") && reason.contains("verify-full"),
            "{reason}"
        );
        assert_eq!(
            connections(&server),
            0,
            "{mode}: the server never heard from the function"
        );
    }
    let stored: Vec<String> = server.db.rows().unwrap().into_iter().map(|r| r.1).collect();
    assert_eq!(stored, ["iam-first"]);
}

#[test]
fn the_system_store_is_only_accepted_with_verify_full() {
    let server = tls_server();
    for mode in ["require", "verify-ca"] {
        let answer = server.callback(
            mode,
            "127.0.0.1",
            &[("PGSSLMODE", mode), ("PGSSLROOTCERT", "system")],
        );
        assert_eq!(answer.status, 500, "{mode}: {answer:?}");
        assert_eq!(answer.body["message"], "server misconfigured");
        let reason = answer.log["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("PGSSLROOTCERT=system"), "{reason}");
    }
    assert!(server.db.rows().unwrap().is_empty());
}

#[test]
fn require_against_a_server_without_tls_says_so() {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let mut all = db.env();
    all.push(("PGSSLMODE".into(), "require".into()));
    let answer = Instance::start(BOOTSTRAP, &all)
        .unwrap()
        .callback("no-tls")
        .unwrap();
    refused(&answer, "tls_unavailable", "PGSSLMODE");
    assert!(db.rows().unwrap().is_empty());
}
