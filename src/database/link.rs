//! The blocking side: the instance's one `postgres::Client`, opened lazily, reused, reconnected once when it
//! dropped, and the statement that stores a pair. Everything here runs on a blocking thread (the client owns a
//! tokio runtime of its own, which must never be started, used or dropped on the function's async thread).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{CancelToken, Client, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Stored;
use super::error::{DatabaseError, Failure};
use super::progress::{Phase, Progress};
use super::settings::{Auth, DatabaseSecret, Settings};
use super::tls;
use crate::extension::SecretsExtension;

/// A new code, the common case, is this one statement: the unique indexes on `code` and `state` decide
/// repeats and conflicts, not a read before the write. It is prepared once per connection (the server parses
/// and plans it once); a pooler that does not keep named statements gets it unnamed (`query_typed`).
const INSERT_CODE: &str = "insert into cafe24.oauth_authorization_codes (code, state) values ($1, $2) \
                           on conflict do nothing returning id";

/// Only when the insert did nothing: the rows the pair collided with (a repeat, or a conflict). Through a function
/// (sql/schema.sql), so that the function's role needs no right to read stored codes.
const FIND_CODE: &str =
    "select id, same_code, same_state from cafe24.find_oauth_authorization_code($1, $2)";

/// The same look-up on the table itself, for a database where the table was made by hand from D2's four columns
/// and sql/schema.sql's function is missing: it needs the role to read the table, which then is the grant to give.
const FIND_CODE_IN_TABLE: &str = "select id, code = $1, state = $2 from cafe24.oauth_authorization_codes \
                                  where code = $1 or state = $2";

const PAIR_TYPES: [Type; 2] = [Type::TEXT, Type::TEXT];

/// The TLS a connection is opened with; its cancel request must use the same.
#[derive(Clone)]
pub enum Tls {
    Off,
    On(MakeRustlsConnect),
}

/// What stops a running statement: the connection's cancel key, sent over a connection of its own.
pub struct CancelTarget {
    token: CancelToken,
    tls: Tls,
}

impl CancelTarget {
    /// Blocking: a connection to the server, the key, and done.
    pub fn send(&self) {
        let result = match &self.tls {
            Tls::Off => self.token.cancel_query(NoTls),
            Tls::On(connector) => self.token.cancel_query(connector.clone()),
        };
        if let Err(e) = result {
            log::warn!(target: "database", "the statement's cancel request failed: {e}");
        }
    }
}

/// How the insert is sent on a connection.
enum Insert {
    /// The connection's first request sends it unnamed: one round trip, on the cold request, where every round
    /// trip counts.
    Fresh,
    /// From the second request on, a statement prepared once: the server parses and plans it once.
    Prepared(Option<Statement>),
    /// Behind a pooler that does not keep named statements: unnamed for the connection's life.
    Unnamed,
}

/// An open connection.
struct Open {
    client: Client,
    /// Made once per connection; handed to the async side for each statement.
    cancel: Arc<CancelTarget>,
    /// How the insert goes out on this connection.
    insert: Insert,
    /// The look-up after an insert that did nothing: `FIND_CODE`, or `FIND_CODE_IN_TABLE` once the function
    /// turned out to be missing.
    find: &'static str,
}

/// What an instance keeps between invocations.
pub struct Link {
    settings: Arc<Settings>,
    open: Option<Open>,
    /// The database secret as last read; read again once when the server refuses it.
    secret: Option<DatabaseSecret>,
    /// Built with the first connection (a CA bundle is parsed when needed, not during init).
    tls: Option<Tls>,
}

impl Link {
    pub fn new(settings: Arc<Settings>) -> Self {
        Link {
            settings,
            open: None,
            secret: None,
            tls: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|open| !open.client.is_closed())
    }

    /// Stores the pair, connecting first when needed; a reused connection that turns out to have dropped (a
    /// restart, a failover, an idle cut) is replaced once and the statement run once more: the insert is
    /// idempotent, so a retry after a lost answer cannot add a row.
    pub fn store(
        &mut self,
        progress: &Progress,
        code: &str,
        state: &str,
    ) -> Result<Stored, DatabaseError> {
        let reused = self.is_open();
        if !reused {
            self.connect(progress)?;
        }
        match self.run(progress, code, state) {
            Err(error) if reused && error.failure == Failure::ConnectionLost => {
                log::warn!(
                    target: "database",
                    detail = error.detail.as_str();
                    "connection lost; reconnecting once"
                );
                self.connect(progress)?;
                self.run(progress, code, state)
            }
            result => result,
        }
    }

    /// One run of the statement. Its connection is kept only when the statement ended on its own with an answer
    /// from the server: not after a cancel, not after the request gave up waiting, not after a broken connection.
    fn run(
        &mut self,
        progress: &Progress,
        code: &str,
        state: &str,
    ) -> Result<Stored, DatabaseError> {
        let Some(open) = self.open.as_mut() else {
            return Err(DatabaseError::new(
                Failure::Internal,
                "no connection to run on",
            ));
        };
        if !progress.enter(Phase::Running, Some(Arc::clone(&open.cancel))) {
            return Err(DatabaseError::new(Failure::Internal, "the request gave up"));
        }
        let result = open.store(code, state);
        let keep = progress.ran();
        let result = result.map_err(|e| {
            let error = DatabaseError::from_postgres(&e);
            match error.failure {
                // An I/O failure mid-statement is the connection going, not a connect timing out.
                Failure::ConnectTimeout => {
                    DatabaseError::new(Failure::ConnectionLost, error.detail)
                }
                _ => error,
            }
        });
        let usable = match &result {
            Ok(_) => true,
            Err(e) => !matches!(e.failure, Failure::ConnectionLost | Failure::Internal),
        };
        if !(keep && usable) {
            self.open = None;
        }
        if !keep && let Ok(stored) = &result {
            log::warn!(
                target: "database",
                "the statement finished after the request stopped waiting ({stored:?}); a retry finds the row"
            );
        }
        result?.ok_or_else(|| {
            DatabaseError::new(
                Failure::RowVanished,
                "the row the pair collided with was deleted, twice",
            )
        })
    }

    /// Opens the connection, replacing any old one; a database secret refused by the server is read again once.
    fn connect(&mut self, progress: &Progress) -> Result<(), DatabaseError> {
        self.open = None;
        if !progress.enter(Phase::Connecting, None) {
            return Err(DatabaseError::new(Failure::Internal, "the request gave up"));
        }
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => self.tls.insert(self.build_tls()?).clone(),
        };
        let settings = Arc::clone(&self.settings);
        let secret_source = match &settings.auth {
            Auth::Secret { id, extension } => Some((id.as_str(), extension)),
            _ => None,
        };
        let secret_deadline = Instant::now() + settings.connect_timeout;
        if let Some((id, extension)) = secret_source
            && self.secret.is_none()
        {
            self.secret = Some(read_secret(id, extension, secret_deadline)?);
        }
        let client = match self.open_client(&tls) {
            Err(error)
                if error.failure == Failure::AuthFailed
                    && let Some((id, extension)) = secret_source =>
            {
                let fresh = read_secret(id, extension, secret_deadline)?;
                if self.secret.as_ref() == Some(&fresh) {
                    return Err(error);
                }
                log::warn!(target: "database", "authentication failed; retrying once with the secret read again");
                self.secret = Some(fresh);
                self.open_client(&tls)?
            }
            result => result?,
        };
        self.open = Some(Open {
            cancel: Arc::new(CancelTarget {
                token: client.cancel_token(),
                tls,
            }),
            client,
            insert: Insert::Fresh,
            find: FIND_CODE,
        });
        Ok(())
    }

    fn open_client(&self, tls: &Tls) -> Result<Client, DatabaseError> {
        let config = self
            .settings
            .config(self.secret.as_ref(), SystemTime::now())
            .map_err(|e| DatabaseError::new(Failure::NoUser, e.to_string()))?;
        let connector = match tls {
            Tls::Off => {
                return config
                    .connect(NoTls)
                    .map_err(|e| DatabaseError::from_postgres(&e));
            }
            Tls::On(connector) => connector,
        };
        let error = match config.connect(connector.clone()) {
            Ok(client) => return Ok(client),
            Err(e) => DatabaseError::from_postgres(&e),
        };
        // libpq's prefer: when TLS fails (the handshake, the certificate's chain, or the server refusing this user
        // over TLS), the attempt is made again without it. Where the server then demands TLS, its first refusal is
        // the one that says what to fix.
        let tls_refused = matches!(
            error.failure,
            Failure::TlsRejected | Failure::TlsHandshake | Failure::AuthRejected
        );
        if self.settings.ssl_mode != tls::SslMode::Prefer || !tls_refused {
            return Err(error);
        }
        let mut plain = config;
        plain.ssl_mode(postgres::config::SslMode::Disable);
        plain
            .connect(NoTls)
            .map_err(|e| match DatabaseError::from_postgres(&e) {
                retry if retry.failure == Failure::TlsRequired => error,
                retry => retry,
            })
    }

    fn build_tls(&self) -> Result<Tls, DatabaseError> {
        if self.settings.ssl_mode == tls::SslMode::Disable {
            return Ok(Tls::Off);
        }
        tls::connector(self.settings.ssl_mode, self.settings.root_certs.as_ref())
            .map(Tls::On)
            .map_err(|e| DatabaseError::new(Failure::TlsSetup, e))
    }
}

impl Open {
    /// `None` when the pair was neither inserted nor found, twice.
    fn store(&mut self, code: &str, state: &str) -> Result<Option<Stored>, postgres::Error> {
        let pair: [&(dyn ToSql + Sync); 2] = [&code, &state];
        // A row that blocked the insert can be gone before the look-up (a purge): then the insert is tried again.
        for _ in 0..2 {
            if let Some(row) = self.insert(&pair)?.first() {
                return Ok(Some(Stored::New {
                    id: row.try_get(0)?,
                }));
            }
            let mut taken = None;
            for row in self.find(&pair)? {
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

    /// The rows the pair collided with.
    fn find(&mut self, pair: &[&(dyn ToSql + Sync); 2]) -> Result<Vec<Row>, postgres::Error> {
        let typed = [(pair[0], Type::TEXT), (pair[1], Type::TEXT)];
        match self.client.query_typed(self.find, &typed) {
            Err(e) if self.find == FIND_CODE && e.code() == Some(&SqlState::UNDEFINED_FUNCTION) => {
                log::warn!(
                    target: "database",
                    "cafe24.find_oauth_authorization_code is missing (sql/schema.sql not applied?): reading the \
                     table instead, which needs select on it"
                );
                self.find = FIND_CODE_IN_TABLE;
                self.client.query_typed(self.find, &typed)
            }
            result => result,
        }
    }

    fn insert(&mut self, pair: &[&(dyn ToSql + Sync); 2]) -> Result<Vec<Row>, postgres::Error> {
        let prepared = match &self.insert {
            Insert::Fresh => {
                self.insert = Insert::Prepared(None);
                None
            }
            Insert::Prepared(statement) => Some(statement.clone()),
            Insert::Unnamed => None,
        };
        if let Some(statement) = prepared {
            match self.prepared_insert(statement, pair) {
                // A pooler in transaction mode may run the prepare and the execute on different server
                // connections. The insert did nothing then, so it is sent again, unnamed, from now on.
                Err(e) if e.code().is_some_and(pooler_lost_it) => {
                    log::warn!(
                        target: "database",
                        "the server does not keep prepared statements on this connection (a pooler in transaction \
                         mode?): sending the insert unnamed from now on"
                    );
                    self.insert = Insert::Unnamed;
                }
                result => return result,
            }
        }
        let typed = [(pair[0], Type::TEXT), (pair[1], Type::TEXT)];
        self.client.query_typed(INSERT_CODE, &typed)
    }

    fn prepared_insert(
        &mut self,
        statement: Option<Statement>,
        pair: &[&(dyn ToSql + Sync); 2],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = match statement {
            Some(statement) => statement,
            None => {
                let statement = self.client.prepare_typed(INSERT_CODE, &PAIR_TYPES)?;
                self.insert = Insert::Prepared(Some(statement.clone()));
                statement
            }
        };
        self.client.query(&statement, pair)
    }
}

/// What a pooler that does not keep named statements answers: the statement is unknown on the server connection
/// the execute landed on, or its name is taken by another client's there.
fn pooler_lost_it(code: &SqlState) -> bool {
    *code == SqlState::INVALID_SQL_STATEMENT_NAME || *code == SqlState::DUPLICATE_PSTATEMENT
}

/// Through the Parameters and Secrets extension; its errors never carry the secret's text.
fn read_secret(
    id: &str,
    extension: &SecretsExtension,
    deadline: Instant,
) -> Result<DatabaseSecret, DatabaseError> {
    let text = extension
        .secret_string(id, deadline)
        .map_err(|e| DatabaseError::new(Failure::SecretUnavailable, e))?;
    DatabaseSecret::parse(id, text.expose())
        .map_err(|e| DatabaseError::new(Failure::SecretMalformed, e))
}
