//! The seed's troubleshooting list, as code: what failed and what to check (D3: for the log, never the client).

use std::time::Duration;

/// A database failure, for the log only: the client sees a plain 500 (D3).
#[derive(Debug)]
pub struct DatabaseError {
    /// One word for the log line and the metric.
    pub kind: &'static str,
    /// What to check, for whoever reads the log.
    pub hint: &'static str,
    /// The driver's error text. It never holds a password or a secret; it may name the host, so it stays in the
    /// log.
    pub detail: String,
    /// The configuration, not the database, is at fault: the client is told "server misconfigured".
    pub misconfigured: bool,
}

const CHECK_NETWORK: &str = "no answer in time: check the network path (VPC, security groups, PGHOST/PGPORT) and the database's load";

impl DatabaseError {
    pub fn from_postgres(error: &postgres::Error) -> Self {
        let (kind, hint) = diagnose(error);
        DatabaseError {
            kind,
            hint,
            detail: error_chain(error),
            misconfigured: false,
        }
    }

    pub fn misconfigured(kind: &'static str, hint: &'static str, detail: String) -> Self {
        DatabaseError {
            kind,
            hint,
            detail,
            misconfigured: true,
        }
    }

    pub fn connect_timeout(after: Duration) -> Self {
        DatabaseError {
            kind: "connect_timeout",
            hint: CHECK_NETWORK,
            detail: format!(
                "no connection within {} s (PGCONNECT_TIMEOUT)",
                after.as_secs()
            ),
            misconfigured: false,
        }
    }

    /// The request's own deadline passed first (the Lambda's, or connect plus statement timeout).
    pub fn deadline(waiting_for: &str) -> Self {
        DatabaseError {
            kind: "timeout",
            hint: CHECK_NETWORK,
            detail: format!("the request's deadline passed while waiting for {waiting_for}"),
            misconfigured: false,
        }
    }

    pub fn internal(detail: String) -> Self {
        DatabaseError {
            kind: "internal_error",
            hint: "the database task did not finish; this is a bug",
            detail,
            misconfigured: false,
        }
    }
}

fn diagnose(error: &postgres::Error) -> (&'static str, &'static str) {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return match code {
            "28P01" => (
                "auth_failed",
                "check PGUSER and the password (PGPASSWORD, the secret of PGSECRET_ID, or the IAM policy's \
                 rds-db:connect and the user's rds_iam role)",
            ),
            "28000" if db.message().contains("no encryption") => (
                "tls_required",
                "the server requires TLS: set PGSSLMODE=verify-full (with PGSSLROOTCERT) or require",
            ),
            "28000" => (
                "auth_rejected",
                "the server refused this user/host: check pg_hba rules and PGUSER",
            ),
            "3D000" => ("no_database", "check PGDATABASE"),
            "42P01" | "3F000" => ("no_table", "the table is missing: run sql/schema.sql"),
            "42501" => (
                "permission_denied",
                "grant insert, select on the table (see sql/schema.sql)",
            ),
            "57014" => (
                "statement_timeout",
                "the statement ran past STATEMENT_TIMEOUT_SECONDS and was cancelled: check the database's load \
                 and locks on the table",
            ),
            "53300" => (
                "too_many_connections",
                "the database is out of connections: cap the function's concurrency or use RDS Proxy",
            ),
            _ if code.starts_with("57P") || code.starts_with("08") => (
                "connection_lost",
                "the server closed the connection (restart, failover or admin)",
            ),
            _ => ("database_error", "see detail"),
        };
    }
    if has_source::<rustls::Error>(error) {
        return (
            "tls_rejected",
            "the server's certificate was not accepted: check PGSSLROOTCERT (the RDS CA bundle) and, for \
             verify-full, that PGHOST is the name in the certificate",
        );
    }
    let text = error_chain(error);
    if text.contains("server does not support TLS") {
        return (
            "tls_unavailable",
            "the server does not offer TLS but PGSSLMODE requires it: check PGSSLMODE and the server",
        );
    }
    let io = source::<std::io::Error>(error);
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => (
            "connection_refused",
            "ECONNREFUSED: check VPC, security groups (TCP 5432 from the function) and PGHOST/PGPORT",
        ),
        Some(std::io::ErrorKind::TimedOut) => ("timeout", CHECK_NETWORK),
        _ if text.contains("timed out") => ("timeout", CHECK_NETWORK),
        _ if error.is_closed() || io.is_some() => (
            "connection_lost",
            "the connection dropped: check the database's health",
        ),
        _ => ("database_error", "see detail"),
    }
}

fn source<E: std::error::Error + 'static>(error: &postgres::Error) -> Option<&E> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        source = cause.source();
    }
    None
}

fn has_source<E: std::error::Error + 'static>(error: &postgres::Error) -> bool {
    source::<E>(error).is_some()
        || source::<std::io::Error>(error)
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<E>())
}

pub fn error_chain(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a failure on a reused connection means the connection is gone, so that one reconnect may help.
pub fn connection_lost(error: &postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return code.starts_with("57P") || code.starts_with("08");
    }
    error.is_closed() || source::<std::io::Error>(error).is_some()
}
