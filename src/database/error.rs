//! What went wrong with the database, for the log line only: the client sees a plain 500 that names no host,
//! statement or credential. The specification's troubleshooting list (ECONNREFUSED -> VPC and security groups, and
//! so on) lives here as each kind's hint.

use std::fmt;
use std::time::Duration;

/// The kinds of failure; each has a word for the log and the metrics, a hint, and a side (database or setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// PGHOST did not resolve to an address (a misspelt endpoint, or no DNS in the function's VPC).
    HostNotFound,
    ConnectionRefused,
    /// The connection dropped, or the server ended it (restart, failover, idle cut, administrator).
    ConnectionLost,
    /// The connection attempt did not finish in time.
    ConnectTimeout,
    /// The statement did not finish in time: cancelled by the server's or the function's statement timeout.
    StatementTimeout,
    /// An earlier request's database work still holds the instance's one connection, past its own bound.
    Busy,
    TooManyConnections,
    TlsRequired,
    TlsUnavailable,
    /// The server's certificate was refused.
    TlsRejected,
    /// The TLS handshake failed for another reason (protocol versions, cipher suites, an alert from the server).
    TlsHandshake,
    AuthFailed,
    AuthRejected,
    NoDatabase,
    NoTable,
    PermissionDenied,
    /// The row a repeat collided with was deleted (a purge) while this request ran, twice.
    RowVanished,
    /// Any other error the server reported.
    Server,
    // What the configuration, not the database, gets wrong: the client is told "server misconfigured".
    NoUser,
    TlsSetup,
    SecretUnavailable,
    SecretMalformed,
    /// The database task itself failed (it panicked or the runtime is gone): a bug.
    Internal,
}

const CHECK_NETWORK: &str = "no answer in time: check the network path (VPC, security groups, PGHOST/PGPORT) and \
                             the database's load";

impl Failure {
    /// One word for the log line and the metric, and what to check, for whoever reads the log.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Failure::HostNotFound => (
                "host_not_found",
                "PGHOST does not resolve: check the name (the RDS or RDS Proxy endpoint) and that the function's VPC \
                 resolves names (enableDnsSupport)",
            ),
            Failure::ConnectionRefused => (
                "connection_refused",
                "ECONNREFUSED: check VPC, security groups (TCP 5432 from the function) and PGHOST/PGPORT",
            ),
            Failure::ConnectionLost => (
                "connection_lost",
                "the connection dropped: check the database's health",
            ),
            Failure::ConnectTimeout => ("connect_timeout", CHECK_NETWORK),
            Failure::StatementTimeout => (
                "statement_timeout",
                "the statement ran past its timeout and was cancelled: check the database's load and locks on the \
                 table",
            ),
            Failure::Busy => (
                "connection_busy",
                "an earlier request's database work has not ended: the database stopped answering (check its \
                 health and the network path); the instance answers at once until it does",
            ),
            Failure::TooManyConnections => (
                "too_many_connections",
                "the database is out of connections: cap the function's concurrency or use RDS Proxy",
            ),
            Failure::TlsRequired => (
                "tls_required",
                "the server requires TLS: set PGSSLMODE=verify-full (with PGSSLROOTCERT) or require",
            ),
            Failure::TlsUnavailable => (
                "tls_unavailable",
                "the server does not offer TLS but PGSSLMODE requires it: check PGSSLMODE and the server",
            ),
            Failure::TlsRejected => (
                "tls_rejected",
                "the server's certificate was not accepted: check PGSSLROOTCERT (the RDS CA bundle) and, for \
                 verify-full, that PGHOST is the name in the certificate",
            ),
            Failure::TlsHandshake => (
                "tls_handshake_failed",
                "the TLS handshake failed before any certificate check: the server must offer TLS 1.2 or 1.3 with \
                 a modern cipher suite; check its ssl_min_protocol_version and ssl_ciphers",
            ),
            Failure::AuthFailed => (
                "auth_failed",
                "check PGUSER and the password (PGPASSWORD, the secret of PGSECRET_ID, or the IAM policy's \
                 rds-db:connect and the user's rds_iam role)",
            ),
            Failure::AuthRejected => (
                "auth_rejected",
                "the server refused this user/host: check pg_hba rules and PGUSER",
            ),
            Failure::NoDatabase => ("no_database", "check PGDATABASE"),
            Failure::NoTable => ("no_table", "the table is missing: run sql/schema.sql"),
            Failure::PermissionDenied => (
                "permission_denied",
                "grant insert, select on the table (see sql/schema.sql)",
            ),
            Failure::RowVanished => (
                "row_vanished",
                "a matching row was deleted while this request ran; the client may retry",
            ),
            Failure::Server => ("database_error", "see detail"),
            Failure::NoUser => ("no_user", "set PGUSER"),
            Failure::TlsSetup => (
                "tls_config",
                "check PGSSLROOTCERT (a PEM bundle; relative paths are read from the function's root)",
            ),
            Failure::SecretUnavailable => (
                "secret_unavailable",
                "check PGSECRET_ID, the extension's layer and secretsmanager:GetSecretValue on the secret",
            ),
            Failure::SecretMalformed => (
                "secret_malformed",
                "the secret must be RDS's JSON (username, password, ...) or the password alone",
            ),
            Failure::Internal => (
                "internal_error",
                "the database task did not finish; this is a bug",
            ),
        }
    }

    pub fn name(self) -> &'static str {
        self.describe().0
    }

    pub fn hint(self) -> &'static str {
        self.describe().1
    }

    /// The configuration, not the database, is at fault: the client is told "server misconfigured".
    pub fn misconfigured(self) -> bool {
        matches!(
            self,
            Failure::NoUser
                | Failure::TlsSetup
                | Failure::SecretUnavailable
                | Failure::SecretMalformed
        )
    }
}

/// A failure and what happened, for the log. `detail` never holds a password, a secret or a stored value: a
/// server error is written from its code and message alone, never its DETAIL line ("Failing row contains ...").
#[derive(Debug)]
pub struct DatabaseError {
    pub failure: Failure,
    pub detail: String,
}

impl DatabaseError {
    pub fn new(failure: Failure, detail: impl Into<String>) -> Self {
        DatabaseError {
            failure,
            detail: detail.into(),
        }
    }

    pub fn from_postgres(error: &postgres::Error) -> Self {
        DatabaseError::new(classify(error), describe(error))
    }

    /// A bound ran out while waiting for `what`; `bound` is the limit that really did.
    pub fn timed_out(failure: Failure, what: &str, bound: Bound) -> Self {
        DatabaseError::new(failure, format!("no answer to {what} within {bound}"))
    }
}

/// Which limit set a deadline, so that a failure names the one that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Connect(Duration),
    Statement(Duration),
    /// The invocation's own deadline from Lambda, less the time kept to answer.
    Lambda,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Connect(d) => write!(f, "PGCONNECT_TIMEOUT ({} s)", d.as_secs()),
            Bound::Statement(d) => write!(f, "STATEMENT_TIMEOUT_SECONDS ({} s)", d.as_secs()),
            Bound::Lambda => f.write_str("the invocation's deadline (Lambda's timeout)"),
        }
    }
}

fn classify(error: &postgres::Error) -> Failure {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return match code {
            "28P01" => Failure::AuthFailed,
            "28000" if db.message().contains("no encryption") => Failure::TlsRequired,
            "28000" => Failure::AuthRejected,
            "3D000" => Failure::NoDatabase,
            "42P01" | "3F000" => Failure::NoTable,
            "42501" => Failure::PermissionDenied,
            "57014" => Failure::StatementTimeout,
            "53300" => Failure::TooManyConnections,
            _ if code.starts_with("57P") || code.starts_with("08") => Failure::ConnectionLost,
            _ => Failure::Server,
        };
    }
    if let Some(tls) = source::<rustls::Error>(error) {
        return match tls {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                Failure::TlsRejected
            }
            _ => Failure::TlsHandshake,
        };
    }
    // tokio-postgres and the standard library's resolver say these only in words; their error kinds are private.
    let text = describe(error);
    if text.contains("server does not support TLS") {
        return Failure::TlsUnavailable;
    }
    if text.contains("failed to lookup address information")
        || text.contains("could not resolve any addresses")
    {
        return Failure::HostNotFound;
    }
    match source::<std::io::Error>(error).map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => Failure::ConnectionRefused,
        Some(std::io::ErrorKind::TimedOut) => Failure::ConnectTimeout,
        Some(_) => Failure::ConnectionLost,
        None if error.is_closed() => Failure::ConnectionLost,
        None => Failure::Server,
    }
}

/// The first cause of type `E` in the error's chain, looking inside I/O errors too (rustls reports through one).
fn source<E: std::error::Error + 'static>(error: &postgres::Error) -> Option<&E> {
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<E>())
        {
            return Some(inner);
        }
        cause = current.source();
    }
    None
}

/// The error for a log line. A server error's Display would add its DETAIL, which quotes the row's values.
fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(constraint) = db.constraint() {
            text.push_str(&format!(" (constraint {constraint})"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        let cause_text = current.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        cause = current.source();
    }
    text
}
