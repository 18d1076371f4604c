//! The statement timeout (D6), kept by the client: at the deadline a cancel request stops the statement and the
//! server answers 57014. Neither `SET statement_timeout` nor the startup `options` parameter is used: the first
//! pins an RDS Proxy connection, the proxy refuses the second (STACK.md).
//!
//! One thread per process waits for the deadlines. It sleeps until the earliest armed one and is woken only when
//! an earlier deadline is armed, so a request costs a lock, not a thread or a wake-up.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use super::Tls;

/// What a cancel needs: the connection's key and the TLS it was opened with.
pub struct CancelTarget {
    pub token: postgres::CancelToken,
    pub tls: Tls,
}

#[derive(Default)]
struct Schedule {
    job: Option<(Instant, Arc<CancelTarget>)>,
    /// When the thread will look next; `None` when it sleeps until woken.
    sleeping_until: Option<Instant>,
    started: bool,
}

#[derive(Default)]
pub struct Watchdog {
    shared: Arc<(Mutex<Schedule>, Condvar)>,
}

/// Disarms when the statement has finished, whichever way.
pub struct Armed<'a>(&'a Watchdog);

impl Watchdog {
    pub fn arm(&self, deadline: Instant, target: &Arc<CancelTarget>) -> Armed<'_> {
        let (lock, wake) = &*self.shared;
        let mut armed = lock.lock().unwrap_or_else(PoisonError::into_inner);
        armed.job = Some((deadline, Arc::clone(target)));
        if !armed.started {
            let shared = Arc::clone(&self.shared);
            // Without the thread the statement is still bounded by the request's deadline (main.rs).
            armed.started = std::thread::Builder::new()
                .name("statement-timeout".into())
                .spawn(move || watch(&shared))
                .is_ok();
        } else if armed.sleeping_until.is_none_or(|t| deadline < t) {
            wake.notify_one();
        }
        Armed(self)
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        let (lock, _) = &*self.0.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).job = None;
    }
}

fn watch(shared: &(Mutex<Schedule>, Condvar)) {
    let (lock, wake) = shared;
    let mut armed = lock.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        match armed.job.clone() {
            Some((deadline, target)) if deadline <= now => {
                armed.job = None;
                drop(armed);
                let result = match &target.tls {
                    Tls::Off => target.token.cancel_query(postgres::NoTls),
                    Tls::On(connector) => target.token.cancel_query(connector.clone()),
                };
                if let Err(e) = result {
                    log::warn!(target: "database", "statement timeout: the cancel request failed: {e}");
                }
                armed = lock.lock().unwrap_or_else(PoisonError::into_inner);
            }
            Some((deadline, _)) => {
                armed.sleeping_until = Some(deadline);
                armed = wake
                    .wait_timeout(armed, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            None => {
                armed.sleeping_until = None;
                armed = wake.wait(armed).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}
