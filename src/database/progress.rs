//! What the blocking side is doing right now, shared with the async side that keeps the time bounds. The blocking
//! side only reports (a phase begins, the work ends); the async side decides when a bound has run out, sends the
//! cancel, and gives up. Neither wakes the other on the way: the async side looks when its own timer fires.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::error::{Bound, DatabaseError, Failure};
use super::link::CancelTarget;

pub struct Progress(Mutex<State>);

impl Default for Progress {
    fn default() -> Self {
        Progress(Mutex::new(State::new()))
    }
}

impl State {
    fn new() -> Self {
        State {
            phase: Phase::Queued {
                since: Instant::now(),
            },
            given_up: false,
            cancelled: false,
            cancelling: false,
        }
    }
}

struct State {
    phase: Phase,
    /// The request stopped waiting: start nothing new, and keep no connection it used.
    given_up: bool,
    /// A cancel request was sent for the running statement: that connection is never used again, so a cancel
    /// that arrives late cannot stop the next request's statement.
    cancelled: bool,
    /// A cancel request is still on its way; a second one is never started beside it.
    cancelling: bool,
}

enum Phase {
    /// Handed to the blocking pool, not yet started (or between steps).
    Queued {
        since: Instant,
    },
    Connecting {
        since: Instant,
    },
    Running {
        since: Instant,
        cancel: Option<CancelTarget>,
    },
}

/// What the async side should do next.
pub enum Next {
    /// Wait for the work until then, then look again.
    WaitUntil(Instant),
    /// A bound ran out: answer with this.
    GiveUp(DatabaseError),
    /// The statement ran out of time under this bound: send this cancel, then wait the grace for its answer.
    Cancel(Option<CancelTarget>, Bound),
}

/// What an earlier request's unfinished work is doing, for the log line of a request that found it busy.
pub struct Busy {
    pub what: &'static str,
    pub for_: Duration,
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new request took the connection (nothing else runs on it now).
    pub fn begin(&self) {
        let mut state = self.state();
        let cancelling = state.cancelling;
        *state = State {
            cancelling,
            ..State::new()
        };
    }

    /// The blocking side starts a connection attempt; `false` when the request already gave up.
    pub fn connecting(&self) -> bool {
        let mut state = self.state();
        state.phase = Phase::Connecting {
            since: Instant::now(),
        };
        !state.given_up
    }

    /// The blocking side starts the statement; `false` when the request already gave up.
    pub fn running(&self, cancel: CancelTarget) -> bool {
        let mut state = self.state();
        state.phase = Phase::Running {
            since: Instant::now(),
            cancel: Some(cancel),
        };
        !state.given_up
    }

    /// The statement is over; whether its connection may serve the next request.
    pub fn ran(&self) -> bool {
        let mut state = self.state();
        state.phase = Phase::Queued {
            since: Instant::now(),
        };
        !state.given_up && !state.cancelled
    }

    /// The async side stops waiting.
    pub fn give_up(&self) {
        self.state().given_up = true;
    }

    /// The cancel request is done, whichever way.
    pub fn cancel_sent(&self) {
        self.state().cancelling = false;
    }

    /// Where the work stands against its bounds: the earlier of the phase's own bound and `lambda`, Lambda's
    /// deadline for the invocation. A statement's cancel goes out `grace` before the deadline, so that the
    /// server's answer to it can still come back in time.
    ///
    /// The blocking side does not wake the async side when a phase begins (that would cost a thread switch on
    /// every request), so a wait also ends early enough for any phase that may begin during it.
    pub fn next(
        &self,
        connect_timeout: Duration,
        statement_timeout: Duration,
        lambda: Option<Instant>,
        grace: Duration,
    ) -> Next {
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        let (since, timeout, bound, margin) = match &state.phase {
            Phase::Queued { since } => (
                since,
                statement_timeout,
                Bound::Statement(statement_timeout),
                grace,
            ),
            Phase::Connecting { since } => (
                since,
                connect_timeout,
                Bound::Connect(connect_timeout),
                Duration::ZERO,
            ),
            Phase::Running { since, .. } => (
                since,
                statement_timeout,
                Bound::Statement(statement_timeout),
                grace,
            ),
        };
        let own = after(*since, timeout);
        // What is left of Lambda's deadline, less the grace where a statement may need cancelling.
        let lambda_limit = |margin: Duration| lambda.map(|l| l.checked_sub(margin).unwrap_or(l));
        let (deadline, bound) = match lambda_limit(margin) {
            Some(limit) if limit < own => (limit, Bound::Lambda),
            _ => (own, bound),
        };
        if now < deadline {
            let any_next_phase = after(now, connect_timeout.min(statement_timeout));
            let wake = [Some(deadline), Some(any_next_phase), lambda_limit(grace)]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .min()
                .unwrap_or(deadline);
            return Next::WaitUntil(wake);
        }
        match &mut state.phase {
            Phase::Queued { .. } => Next::GiveUp(DatabaseError::timed_out(
                Failure::Internal,
                "the database task (it did not start)",
                bound,
            )),
            Phase::Connecting { .. } => Next::GiveUp(DatabaseError::timed_out(
                Failure::ConnectTimeout,
                "the connection attempt",
                bound,
            )),
            Phase::Running { cancel, .. } => {
                state.cancelled = true;
                let cancel = cancel.take().filter(|_| !state.cancelling);
                state.cancelling |= cancel.is_some();
                Next::Cancel(cancel, bound)
            }
        }
    }

    /// What holds the connection, for a request that found it busy.
    pub fn busy(&self) -> Busy {
        match &self.state().phase {
            Phase::Connecting { since } => Busy {
                what: "a connection attempt",
                for_: since.elapsed(),
            },
            Phase::Running { since, .. } => Busy {
                what: "a statement",
                for_: since.elapsed(),
            },
            Phase::Queued { since } => Busy {
                what: "the end of its work",
                for_: since.elapsed(),
            },
        }
    }
}

/// `since + span`, or as far as an `Instant` goes.
fn after(since: Instant, span: Duration) -> Instant {
    since.checked_add(span).unwrap_or(since)
}
