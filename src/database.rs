//! The one database connection of a Lambda instance and the idempotent store of a code.
//!
//! The design card: the blocking `postgres` client, opened lazily on the first request inside `spawn_blocking`,
//! kept for the next invocations, reconnected once when it dropped (`link.rs`). Around it, every request ends in
//! bounded time and no request can leave a thread or a socket behind:
//!
//! - One piece of database work at a time per instance. Lambda gives an instance one request at a time, so a
//!   request finds the connection busy only when an earlier one gave up on it: it answers at once instead of
//!   starting another attempt. A server that accepts connections and never answers holds one thread and one
//!   socket, not one per request.
//! - The async side keeps the bounds (`progress.rs`): a connection attempt gets `PGCONNECT_TIMEOUT`, a statement
//!   `STATEMENT_TIMEOUT_SECONDS`, both at most the invocation's deadline. At the statement's bound it sends a
//!   cancel request, which stops the statement on the server so nothing is stored, and waits a moment for the
//!   server's answer. RDS Proxy ignores cancel requests; a `statement_timeout` set on the function's role bounds
//!   the statement there (README, "The database").
//! - A connection whose statement was cancelled, or that a request gave up waiting for, is never used again, so
//!   a cancel that arrives late cannot stop the next request's statement.

mod error;
mod link;
mod progress;
mod settings;
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::{DatabaseError, Failure};
pub use settings::Settings;

use link::Link;
use progress::{Next, Progress};

/// Kept back from the statement's deadline, for its cancel to come back as a clear 57014 before the request
/// gives up.
const CANCEL_GRACE: Duration = Duration::from_millis(300);

/// What storing a (code, state) pair came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New { id: i64 },
    /// The same pair again (a refresh, a retry): the first row's id, nothing written.
    Repeat { id: i64 },
    /// The code is stored under another state: nothing written.
    CodeTaken,
    /// The state was used with another code: nothing written.
    StateTaken,
}

pub struct Database {
    settings: Arc<Settings>,
    /// The async lock is only ever tried, never waited for: see the module comment.
    link: Arc<tokio::sync::Mutex<Link>>,
    progress: Arc<Progress>,
}

impl Database {
    pub fn new(settings: Settings) -> Self {
        let settings = Arc::new(settings);
        Database {
            link: Arc::new(tokio::sync::Mutex::new(Link::new(Arc::clone(&settings)))),
            settings,
            progress: Arc::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stores the pair, or says why not, by Lambda's `deadline` for the invocation at the latest (`None`: the
    /// invocation's deadline is unknown, and the function's own bounds apply).
    pub async fn store_code(
        &self,
        code: &str,
        state: &str,
        deadline: Option<Instant>,
    ) -> Result<Stored, DatabaseError> {
        let Ok(mut link) = Arc::clone(&self.link).try_lock_owned() else {
            let (phase, running) = self.progress.busy();
            return Err(DatabaseError::new(
                Failure::Busy,
                format!(
                    "an earlier request gave up on its database work ({phase:?} for {} s); not waiting",
                    running.as_secs()
                ),
            ));
        };
        self.progress.begin();
        let progress = Arc::clone(&self.progress);
        let (code, state) = (code.to_owned(), state.to_owned());
        let mut task = tokio::task::spawn_blocking(move || link.store(&progress, &code, &state));
        let settings = &self.settings;
        loop {
            let next = self.progress.next(
                settings.connect_timeout,
                settings.statement_timeout,
                deadline,
                CANCEL_GRACE,
            );
            let (until, timed_out) = match next {
                Next::WaitUntil(until) => (until, None),
                Next::GiveUp(error) => (Instant::now(), Some(error)),
                Next::Cancel(target, bound) => {
                    if let Some(target) = target {
                        let progress = Arc::clone(&self.progress);
                        // Detached: it is one connection to a server that just ran our statement, and at most
                        // one is ever on its way (`Progress`).
                        drop(tokio::task::spawn_blocking(move || {
                            target.send();
                            progress.cancel_sent();
                        }));
                    }
                    let error =
                        DatabaseError::timed_out(Failure::StatementTimeout, "the statement", bound);
                    (Instant::now() + CANCEL_GRACE, Some(error))
                }
            };
            match tokio::time::timeout_at(until.into(), &mut task).await {
                Ok(Ok(result)) => return result,
                Ok(Err(join)) => {
                    return Err(DatabaseError::new(Failure::Internal, join.to_string()));
                }
                Err(_) => {
                    if let Some(error) = timed_out {
                        self.progress.give_up();
                        return Err(error);
                    }
                }
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // The client's own runtime must not be dropped on an async thread: it goes on a thread of its own. When a
        // blocking task still holds the link, that task drops it there.
        if let Some(link) = Arc::get_mut(&mut self.link) {
            let link = std::mem::replace(link.get_mut(), Link::new(Arc::clone(&self.settings)));
            let _ = std::thread::spawn(move || drop(link)).join();
        }
    }
}

#[cfg(test)]
mod tests;
