//! What the blocking side is doing, shared with the async side that keeps the time bounds. The blocking side only
//! reports (a phase begins, a statement ends); the async side decides when a bound has run out, sends the cancel
//! and gives up. Neither wakes the other: the async side looks when its own timer fires.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::error::{Bound, DatabaseError, Failure};
use super::link::CancelTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Handed to the blocking pool and not started, or between steps.
    Queued,
    Connecting,
    Running,
}

pub struct Progress(Mutex<State>);

struct State {
    phase: Phase,
    since: Instant,
    /// What stops the running statement, until a cancel is sent.
    cancel: Option<Arc<CancelTarget>>,
    /// The request stopped waiting: start nothing new, and keep no connection it used.
    given_up: bool,
    /// A cancel request went out for the running statement: its connection is never used again, so a cancel that
    /// arrives late cannot stop the next request's statement.
    cancelled: bool,
    /// A cancel request is still on its way; no second one is started beside it.
    cancelling: bool,
}

/// What the async side should do next.
pub enum Next {
    /// Wait for the work until then, then look again.
    WaitUntil(Instant),
    GiveUp(DatabaseError),
    /// The statement's bound ran out: send this cancel (unless one is already on its way), wait the grace, and
    /// give up with a statement timeout under this bound.
    Cancel(Option<Arc<CancelTarget>>, Bound),
}

impl Default for Progress {
    fn default() -> Self {
        Progress(Mutex::new(State {
            phase: Phase::Queued,
            since: Instant::now(),
            cancel: None,
            given_up: false,
            cancelled: false,
            cancelling: false,
        }))
    }
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new request took the connection: nothing else runs on it now.
    pub fn begin(&self) {
        let mut state = self.state();
        (state.given_up, state.cancelled) = (false, false);
        state.enter(Phase::Queued, None);
    }

    /// The blocking side begins a phase (a statement with what cancels it); `false` when the request gave up.
    pub fn enter(&self, phase: Phase, cancel: Option<Arc<CancelTarget>>) -> bool {
        let mut state = self.state();
        state.enter(phase, cancel);
        !state.given_up
    }

    /// The statement ended; whether its connection may serve the next request.
    pub fn ran(&self) -> bool {
        let mut state = self.state();
        state.enter(Phase::Queued, None);
        !state.given_up && !state.cancelled
    }

    pub fn give_up(&self) {
        self.state().given_up = true;
    }

    pub fn cancel_sent(&self) {
        self.state().cancelling = false;
    }

    /// Where the work stands: its phase's bound, or Lambda's `deadline` when that comes first. A statement's
    /// cancel goes out `grace` before the deadline, so that the server's answer to it can still come back in time.
    /// A wait also ends early enough for any phase that may begin during it, which nobody announces.
    pub fn next(
        &self,
        connect: Duration,
        statement: Duration,
        deadline: Option<Instant>,
        grace: Duration,
    ) -> Next {
        let now = Instant::now();
        let mut state = self.state();
        let (own, bound, margin) = match state.phase {
            Phase::Connecting => (connect, Bound::Connect(connect), Duration::ZERO),
            Phase::Queued | Phase::Running => (statement, Bound::Statement(statement), grace),
        };
        let lambda = |margin| deadline.map(|d: Instant| d.checked_sub(margin).unwrap_or(d));
        let own = state.since.checked_add(own).unwrap_or(state.since);
        let (limit, bound) = match lambda(margin) {
            Some(lambda) if lambda < own => (lambda, Bound::Lambda),
            _ => (own, bound),
        };
        if now < limit {
            let next_phase = now.checked_add(connect.min(statement)).unwrap_or(now);
            let wake = [Some(limit), Some(next_phase), lambda(grace)]
                .into_iter()
                .flatten()
                .filter(|t| *t > now);
            return Next::WaitUntil(wake.min().unwrap_or(limit));
        }
        match state.phase {
            Phase::Connecting => Next::GiveUp(DatabaseError::timed_out(
                Failure::ConnectTimeout,
                "the connection attempt",
                bound,
            )),
            Phase::Queued => Next::GiveUp(DatabaseError::timed_out(
                Failure::Internal,
                "the database task",
                bound,
            )),
            Phase::Running => {
                state.cancelled = true;
                let cancel = if state.cancelling {
                    None
                } else {
                    state.cancel.take()
                };
                state.cancelling |= cancel.is_some();
                Next::Cancel(cancel, bound)
            }
        }
    }

    /// For a request that found the connection busy: what holds it, and for how long.
    pub fn busy(&self) -> (Phase, Duration) {
        let state = self.state();
        (state.phase, state.since.elapsed())
    }
}

impl State {
    fn enter(&mut self, phase: Phase, cancel: Option<Arc<CancelTarget>>) {
        (self.phase, self.since, self.cancel) = (phase, Instant::now(), cancel);
    }
}
