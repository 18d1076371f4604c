//! The one database connection of a Lambda instance (D6) and the idempotent store of a code (D5).
//!
//! `postgres::Client` owns a tokio runtime of its own: connecting, querying or dropping it on a thread that
//! drives the function's async runtime panics. Every method here blocks and is called inside `spawn_blocking`;
//! `Drop` hands a live client to a plain thread for the same reason.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use postgres::types::Type;
use postgres::{Client, NoTls};

/// D6: one round trip. The look-up for a repeat and the insert are one statement, and `on conflict do nothing`
/// makes the database, not a read-then-write in the code, decide whether the pair is new (D5). The insert only
/// runs when nothing matched, so a repeat does not use up a sequence value.
const STORE_CODE: &str = "\
with existing as (
    select id, code = $1 as same_code, state = $2 as same_state
      from cafe24.oauth_authorization_codes
     where code = $1 or state = $2
), inserted as (
    insert into cafe24.oauth_authorization_codes (code, state)
    select $1, $2 where not exists (select from existing)
    on conflict do nothing
    returning id
)
select id, true as inserted, true as same_code, true as same_state from inserted
union all
select id, false, same_code, same_state from existing";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What storing a (code, state) pair came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New { id: i64 },
    /// The same pair again (a refresh, a retry): the first row's id, nothing written.
    Repeat { id: i64 },
    /// The code is stored under another state (D5): nothing written.
    CodeTaken,
    /// The state was used with another code (D5): nothing written.
    StateTaken,
}

/// Connection parameters read once from libpq's variables (D6).
#[derive(Clone)]
pub struct Settings {
    config: postgres::Config,
    /// For log lines: where we connect, never the password.
    pub target: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// From PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGCONNECT_TIMEOUT and PGAPPNAME.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        // libpq would try a Unix socket; a Lambda has none, so the loopback host is the useful default.
        let host = var("PGHOST").unwrap_or_else(|| "localhost".to_owned());
        let port = match var("PGPORT") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("PGPORT is not a port number: {p:?}"))?,
            None => 5432,
        };
        let user = var("PGUSER")
            .or_else(|| var("USER"))
            .ok_or("PGUSER is not set")?;
        let dbname = var("PGDATABASE").unwrap_or_else(|| user.clone());
        let connect_timeout = match var("PGCONNECT_TIMEOUT") {
            // libpq: seconds; 0 means wait forever, which D6 rules out, so it takes the default; below 2 is 2.
            Some(t) => match t.trim().parse::<i64>() {
                Ok(s) if s > 0 => Duration::from_secs(s.max(2) as u64),
                Ok(_) => DEFAULT_CONNECT_TIMEOUT,
                Err(_) => {
                    return Err(format!(
                        "PGCONNECT_TIMEOUT is not a number of seconds: {t:?}"
                    ));
                }
            },
            None => DEFAULT_CONNECT_TIMEOUT,
        };

        let mut config = postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&dbname)
            .connect_timeout(connect_timeout);
        if let Some(password) = var("PGPASSWORD") {
            config.password(password);
        }
        if let Some(name) = var("PGAPPNAME") {
            config.application_name(&name);
        }
        Ok(Settings {
            config,
            target: format!("{user}@{host}:{port}/{dbname}"),
        })
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        self.config.connect(NoTls)
    }
}

/// A database failure, for the log only: the client sees a plain 500 (D3).
#[derive(Debug)]
pub struct DatabaseError {
    /// One word for the log line and the metric.
    pub kind: &'static str,
    /// What to check, for whoever reads the log.
    pub hint: &'static str,
    /// The driver's error text. It never holds the password; it may name the host, so it stays in the log.
    pub detail: String,
}

impl DatabaseError {
    fn from_postgres(error: &postgres::Error) -> Self {
        let (kind, hint) = diagnose(error);
        DatabaseError {
            kind,
            hint,
            detail: error_chain(error),
        }
    }
}

/// The seed's troubleshooting list, as code: what failed and what to check.
fn diagnose(error: &postgres::Error) -> (&'static str, &'static str) {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return match code {
            "28P01" => (
                "auth_failed",
                "check PGUSER / PGPASSWORD (or the secret they come from)",
            ),
            "28000" if db.message().contains("no encryption") => (
                "tls_required",
                "the server requires TLS: set PGSSLMODE (require, verify-full)",
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
                "the database is slow or locked: check its load",
            ),
            _ if code.starts_with("57P") || code.starts_with("08") => (
                "connection_lost",
                "the server closed the connection (restart, failover or admin)",
            ),
            "53300" => (
                "too_many_connections",
                "the database is out of connections: cap the function's concurrency",
            ),
            _ => ("database_error", "see detail"),
        };
    }
    let io = source_io_error(error);
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => (
            "connection_refused",
            "ECONNREFUSED: check VPC, security groups (TCP 5432 from the function) and PGHOST/PGPORT",
        ),
        Some(std::io::ErrorKind::TimedOut) => (
            "timeout",
            "no answer in time: check the network path, security groups and the database's load",
        ),
        _ if error.to_string().contains("timed out") => (
            "timeout",
            "no answer in time: check the network path, security groups and the database's load",
        ),
        _ if error.is_closed() || io.is_some() => (
            "connection_lost",
            "the connection dropped: check the database's health",
        ),
        _ => ("database_error", "see detail"),
    }
}

fn source_io_error(error: &postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

fn error_chain(error: &postgres::Error) -> String {
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
fn connection_lost(error: &postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return code.starts_with("57P") || code.starts_with("08");
    }
    error.is_closed() || source_io_error(error).is_some()
}

/// The lazily opened, reused connection of the card: opened on first use, reconnected once when it dropped.
pub struct Database {
    settings: Settings,
    client: Mutex<Option<Client>>,
}

impl Database {
    pub fn new(settings: Settings) -> Self {
        Database {
            settings,
            client: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stores the pair, reusing the connection; blocks, so call it inside `spawn_blocking`.
    pub fn store_code(&self, code: &str, state: &str) -> Result<Stored, DatabaseError> {
        // A panic while the lock was held cannot leave the Option half-written; the client is still usable
        // or closed, and a closed one is replaced below.
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let reused = match slot.take() {
            Some(client) if !client.is_closed() => {
                *slot = Some(client);
                true
            }
            _ => false,
        };
        let client = match slot.as_mut() {
            Some(client) => client,
            None => slot.insert(
                self.settings
                    .connect()
                    .map_err(|e| DatabaseError::from_postgres(&e))?,
            ),
        };
        match store_once(client, code, state) {
            // The card: a connection that dropped between invocations is reconnected once, and the statement
            // retried once. The insert is idempotent (D5), so a retry after a lost reply cannot add a row.
            Err(error) if reused && connection_lost(&error) => {
                log::warn!(
                    target: "database",
                    detail = error_chain(&error).as_str();
                    "connection lost; reconnecting once"
                );
                *slot = None;
                let client = slot.insert(
                    self.settings
                        .connect()
                        .map_err(|e| DatabaseError::from_postgres(&e))?,
                );
                store_once(client, code, state)
            }
            result => result,
        }
        .map_err(|e| DatabaseError::from_postgres(&e))?
        // Only a row deleted between the two runs (a purge) can do that. The pair is not stored, so the
        // request must not be answered as saved.
        .ok_or_else(|| DatabaseError {
            kind: "row_vanished",
            hint: "a matching row was deleted while this request ran; the client may retry",
            detail: String::new(),
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(client) = client {
            // The client's own runtime must not be dropped on an async thread (see the module comment).
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// `None` when the pair was neither inserted nor found, twice.
fn store_once(
    client: &mut Client,
    code: &str,
    state: &str,
) -> Result<Option<Stored>, postgres::Error> {
    // The statement sees the table as of its start: a pair committed by a concurrent request while our insert
    // waited on it is invisible to its select. Running it again, with a new snapshot, sees that row.
    for _ in 0..2 {
        let rows = client.query_typed(STORE_CODE, &[(&code, Type::TEXT), (&state, Type::TEXT)])?;
        let mut taken = None;
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let inserted: bool = row.try_get(1)?;
            let same_code: bool = row.try_get(2)?;
            let same_state: bool = row.try_get(3)?;
            match (inserted, same_code, same_state) {
                (true, _, _) => return Ok(Some(Stored::New { id })),
                (false, true, true) => return Ok(Some(Stored::Repeat { id })),
                (false, true, false) => taken = Some(Stored::CodeTaken),
                (false, false, _) => taken = taken.or(Some(Stored::StateTaken)),
            }
        }
        if taken.is_some() {
            return Ok(taken);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn settings_follow_libpq_defaults() {
        let s = Settings::from_lookup(lookup(&[("PGUSER", "app")])).unwrap();
        assert_eq!(s.target, "app@localhost:5432/app");
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        let s = Settings::from_lookup(lookup(&[
            ("PGHOST", "db.example"),
            ("PGPORT", "6432"),
            ("PGUSER", "app"),
            ("PGPASSWORD", "hunter2"),
            ("PGDATABASE", "shop"),
            ("PGCONNECT_TIMEOUT", "1"),
        ]))
        .unwrap();
        assert_eq!(s.target, "app@db.example:6432/shop");
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn settings_reject_what_libpq_would() {
        assert!(
            Settings::from_lookup(lookup(&[]))
                .unwrap_err()
                .contains("PGUSER")
        );
        let e = Settings::from_lookup(lookup(&[("PGUSER", "a"), ("PGPORT", "x")])).unwrap_err();
        assert!(e.contains("PGPORT"), "{e}");
        let s =
            Settings::from_lookup(lookup(&[("PGUSER", "a"), ("PGCONNECT_TIMEOUT", "0")])).unwrap();
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT),
            "0 must not mean forever"
        );
    }
}
