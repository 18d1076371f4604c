//! The one database connection of a Lambda instance (D6) and the idempotent store of a code (D5).
//!
//! `postgres::Client` owns a tokio runtime of its own: connecting, querying or dropping it on a thread that
//! drives the function's async runtime panics. Every touch of it happens inside `spawn_blocking` (or on a plain
//! thread of this module), drops included.
//!
//! Time is bounded three ways (D6): a connection attempt by `PGCONNECT_TIMEOUT`, a statement by
//! `STATEMENT_TIMEOUT_SECONDS` (a cancel request, see `watchdog`), and the whole call by the request's deadline,
//! which the async side enforces even if the server stops answering altogether.

mod diagnose;
mod settings;
mod tls;
mod watchdog;

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use postgres::types::Type;
use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use diagnose::DatabaseError;
pub use settings::{Auth, Settings};
pub use tls::SslMode;

use crate::secrets::{DatabaseSecret, SecretsExtension};
use watchdog::{CancelTarget, Watchdog};

/// D5, decided by the database: `on conflict do nothing` against the unique code and state, then the answer
/// from what came back (STYLE.md). A new code, the common case, is this one round trip; a plain insert is also
/// the cheapest statement for the server to plan, which matters because it is sent unnamed (`query_typed`, D6)
/// and planned every time: a statement prepared once per connection would be cheaper still, but RDS Proxy pins
/// a client that holds named prepared statements.
const INSERT_CODE: &str = "insert into cafe24.oauth_authorization_codes (code, state) values ($1, $2) \
                           on conflict do nothing returning id";

/// Only when the insert did nothing: the rows the pair collided with (a repeat, or a conflict).
const FIND_CODE: &str = "select id, code = $1, state = $2 from cafe24.oauth_authorization_codes \
                         where code = $1 or state = $2";

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

/// Kept back from the request's deadline for the statement's cancel to come back as a clear 57014 before the
/// async side gives up.
const CANCEL_GRACE: Duration = Duration::from_millis(300);

/// The TLS a connection is opened with; a cancel request must use the same.
#[derive(Clone)]
pub enum Tls {
    Off,
    On(MakeRustlsConnect),
}

impl Tls {
    fn connect(&self, config: &postgres::Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Off => config.connect(NoTls),
            Tls::On(connector) => config.connect(connector.clone()),
        }
    }
}

/// An open connection and what cancels its statements.
struct Live {
    client: Client,
    cancel: Arc<CancelTarget>,
}

/// What one instance keeps between invocations (the card's reused client).
#[derive(Default)]
struct Connection {
    live: Option<Live>,
    /// D9: the database secret as last read; read again once when the server refuses it.
    secret: Option<DatabaseSecret>,
    /// Built on the first connection: a CA bundle is parsed when it is needed, not at start.
    tls: Option<Tls>,
}

/// The lazily opened, reused connection of the card: opened on first use, reconnected once when it dropped.
pub struct Database {
    settings: Settings,
    /// An async lock, so that a request that finds the connection still busy with an earlier one (a server that
    /// stopped answering) waits on the async side, bounded, instead of parking another blocking thread.
    connection: Arc<tokio::sync::Mutex<Connection>>,
    watchdog: Watchdog,
}

impl Database {
    pub fn new(settings: Settings) -> Self {
        Database {
            settings,
            connection: Arc::default(),
            watchdog: Watchdog::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stores the pair by `deadline` at the latest, or says why not. The blocking work runs in `spawn_blocking`.
    pub async fn store_code(
        self: &Arc<Self>,
        code: &str,
        state: &str,
        deadline: Instant,
    ) -> Result<Stored, DatabaseError> {
        let own = Instant::now()
            + self.settings.connect_timeout
            + self.settings.statement_timeout
            + CANCEL_GRACE;
        let deadline = deadline.min(own);
        let until = tokio::time::Instant::from_std(deadline);
        let Ok(mut connection) =
            tokio::time::timeout_at(until, Arc::clone(&self.connection).lock_owned()).await
        else {
            return Err(DatabaseError::deadline(
                "the connection, still busy with an earlier request",
            ));
        };
        let database = Arc::clone(self);
        let (code, state) = (code.to_owned(), state.to_owned());
        let blocking_deadline = deadline.checked_sub(CANCEL_GRACE).unwrap_or(deadline);
        let task = tokio::task::spawn_blocking(move || {
            database.store_blocking(&mut connection, &code, &state, blocking_deadline)
        });
        match tokio::time::timeout_at(until, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(DatabaseError::internal(join.to_string())),
            Err(_) => Err(DatabaseError::deadline("the database")),
        }
    }

    fn store_blocking(
        &self,
        connection: &mut Connection,
        code: &str,
        state: &str,
        deadline: Instant,
    ) -> Result<Stored, DatabaseError> {
        let reused = connection
            .live
            .as_ref()
            .is_some_and(|live| !live.client.is_closed());
        if !reused {
            self.connect(connection, deadline)?;
        }
        let result = match self.run(connection, code, state, deadline)? {
            // The card: a connection that dropped between invocations is reconnected once, and the statement
            // retried once. The insert is idempotent (D5), so a retry after a lost reply cannot add a row.
            Err(error)
                if reused && diagnose::connection_lost(&error) && Instant::now() < deadline =>
            {
                log::warn!(
                    target: "database",
                    detail = diagnose::error_chain(&error).as_str();
                    "connection lost; reconnecting once"
                );
                self.connect(connection, deadline)?;
                self.run(connection, code, state, deadline)?
            }
            result => result,
        };
        result
            .map_err(|e| DatabaseError::from_postgres(&e))?
            // Only a row deleted between the two runs (a purge) can do that. The pair is not stored, so the
            // request must not be answered as saved.
            .ok_or_else(|| DatabaseError {
                kind: "row_vanished",
                hint: "a matching row was deleted while this request ran; the client may retry",
                detail: String::new(),
                misconfigured: false,
            })
    }

    /// One run of the statement on the open connection, cancelled at the statement timeout.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        connection: &mut Connection,
        code: &str,
        state: &str,
        deadline: Instant,
    ) -> Result<Result<Option<Stored>, postgres::Error>, DatabaseError> {
        let Some(live) = connection.live.as_mut() else {
            return Err(DatabaseError::internal("no connection to run on".into()));
        };
        let cancel_at = deadline.min(Instant::now() + self.settings.statement_timeout);
        let _armed = self.watchdog.arm(cancel_at, &live.cancel);
        Ok(store_once(&mut live.client, code, state))
    }

    /// Opens the connection, replacing any old one; a database secret refused by the server is read again once.
    fn connect(&self, connection: &mut Connection, deadline: Instant) -> Result<(), DatabaseError> {
        connection.live = None;
        let deadline = deadline.min(Instant::now() + self.settings.connect_timeout);
        let tls = match &connection.tls {
            Some(tls) => tls.clone(),
            None => connection.tls.insert(self.tls()?).clone(),
        };
        let secret_source = match &self.settings.auth {
            Auth::Secret { id, extension } => Some((id.as_str(), extension)),
            _ => None,
        };
        if let Some((id, extension)) = secret_source
            && connection.secret.is_none()
        {
            connection.secret = Some(read_secret(id, extension)?);
        }
        let live = match self.open(connection.secret.as_ref(), &tls, deadline) {
            // D9: RDS rotates a managed secret every 7 days; a process holding the old one reads it again, once.
            Err(error)
                if error.kind == "auth_failed"
                    && let Some((id, extension)) = secret_source =>
            {
                let fresh = read_secret(id, extension)?;
                if connection.secret.as_ref() == Some(&fresh) {
                    return Err(error);
                }
                log::warn!(target: "database", "authentication failed; retrying once with the secret read again");
                self.open(Some(connection.secret.insert(fresh)), &tls, deadline)?
            }
            result => result?,
        };
        connection.live = Some(live);
        Ok(())
    }

    /// One connection attempt, given up at `deadline`. tokio-postgres bounds only the TCP connect; a server
    /// that accepts and then never answers would hold the attempt forever, so it runs on its own thread, which
    /// is left to finish (or fail) alone when the deadline passes.
    fn open(
        &self,
        secret: Option<&DatabaseSecret>,
        tls: &Tls,
        deadline: Instant,
    ) -> Result<Live, DatabaseError> {
        let config = self
            .settings
            .config(secret, SystemTime::now())
            .map_err(|e| DatabaseError::misconfigured("no_user", "set PGUSER", e))?;
        let (sender, receiver) = mpsc::sync_channel(1);
        let attempt_tls = tls.clone();
        std::thread::Builder::new()
            .name("database-connect".into())
            .spawn(move || {
                let _ = sender.send(attempt_tls.connect(&config));
            })
            .map_err(|e| DatabaseError::internal(format!("no thread to connect on: {e}")))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(wait) {
            Ok(Ok(client)) => Ok(Live {
                cancel: Arc::new(CancelTarget {
                    token: client.cancel_token(),
                    tls: tls.clone(),
                }),
                client,
            }),
            Ok(Err(error)) => Err(DatabaseError::from_postgres(&error)),
            Err(RecvTimeoutError::Timeout) => Err(DatabaseError::connect_timeout(wait)),
            Err(RecvTimeoutError::Disconnected) => Err(DatabaseError::internal(
                "the connection attempt ended without a result".into(),
            )),
        }
    }

    fn tls(&self) -> Result<Tls, DatabaseError> {
        if self.settings.ssl_mode == SslMode::Disable {
            return Ok(Tls::Off);
        }
        tls::connector(self.settings.ssl_mode, self.settings.root_certs.as_ref())
            .map(Tls::On)
            .map_err(|e| {
                DatabaseError::misconfigured(
                    "tls_config",
                    "check PGSSLROOTCERT (a PEM bundle; relative paths are read from the function's root)",
                    e,
                )
            })
    }
}

/// D9: through the Parameters and Secrets extension; its errors never carry the secret's text.
fn read_secret(id: &str, extension: &SecretsExtension) -> Result<DatabaseSecret, DatabaseError> {
    let text = extension.secret_string(id).map_err(|e| {
        DatabaseError::misconfigured(
            "secret_unavailable",
            "check PGSECRET_ID, the extension's layer and secretsmanager:GetSecretValue on the secret",
            e,
        )
    })?;
    DatabaseSecret::parse(id, &text).map_err(|e| {
        DatabaseError::misconfigured(
            "secret_malformed",
            "the secret must be RDS's JSON (username, password, ...) or the password alone",
            e,
        )
    })
}

impl Drop for Database {
    fn drop(&mut self) {
        let Some(connection) = Arc::get_mut(&mut self.connection) else {
            return;
        };
        if let Some(live) = connection.get_mut().live.take() {
            // The client's own runtime must not be dropped on an async thread (see the module comment).
            let _ = std::thread::spawn(move || drop(live)).join();
        }
    }
}

/// `None` when the pair was neither inserted nor found, twice.
fn store_once(
    client: &mut Client,
    code: &str,
    state: &str,
) -> Result<Option<Stored>, postgres::Error> {
    let pair: [(&(dyn postgres::types::ToSql + Sync), Type); 2] =
        [(&code, Type::TEXT), (&state, Type::TEXT)];
    // A row that blocked the insert can be gone before the look-up (a purge): then the insert is tried again.
    for _ in 0..2 {
        if let Some(row) = client.query_typed(INSERT_CODE, &pair)?.first() {
            return Ok(Some(Stored::New {
                id: row.try_get(0)?,
            }));
        }
        let mut taken = None;
        for row in client.query_typed(FIND_CODE, &pair)? {
            let id: i64 = row.try_get(0)?;
            match (row.try_get::<_, bool>(1)?, row.try_get::<_, bool>(2)?) {
                (true, true) => return Ok(Some(Stored::Repeat { id })),
                (true, false) => taken = Some(Stored::CodeTaken),
                (false, _) => taken = taken.or(Some(Stored::StateTaken)),
            }
        }
        if taken.is_some() {
            return Ok(taken);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
