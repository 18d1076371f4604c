//! Lambda's deadline for an invocation, when the runtime sent a real one.
//!
//! Lambda sends `Lambda-Runtime-Deadline-Ms`, the Unix time in milliseconds past which it stops the invocation.
//! Local runners and emulators have long sent other things: cargo-lambda 1.9.2 sends a duration (`600000`, ten
//! minutes after 1970), others send 0 or a time far in the future. Taken at its word, such a value would refuse
//! every request at once, or allow one to run for days. A deadline that is zero, already past on arrival or
//! further away than Lambda's longest timeout therefore counts as unknown: the function's own bounds
//! (`PGCONNECT_TIMEOUT`, `STATEMENT_TIMEOUT_SECONDS`) then apply alone, and one warning per process says so.

use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept from Lambda's deadline to send the answer: past the deadline Lambda stops the process, and API Gateway
/// answers a bare 502 instead of the function's JSON.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Lambda's longest function timeout, 15 minutes, and a minute for the clocks of Lambda and of the sandbox.
const LONGEST: Duration = Duration::from_secs(16 * 60);

/// The instant by which the function must have answered, or `None` when the runtime sent no usable deadline.
pub fn for_invocation(deadline_ms: u64) -> Option<Instant> {
    match remaining(deadline_ms, SystemTime::now()) {
        Ok(left) => Some(Instant::now() + left.saturating_sub(ANSWER_MARGIN)),
        Err(now_ms) => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                log::warn!(
                    target: "runtime",
                    deadline_ms = deadline_ms,
                    now_ms = now_ms;
                    "the runtime's deadline is not a time within Lambda's longest timeout (a local runner?): using \
                     the function's own bounds only; this is said once per process"
                );
            });
            None
        }
    }
}

/// The time left until `deadline_ms`, or the current Unix time in milliseconds when it is no usable deadline.
fn remaining(deadline_ms: u64, now: SystemTime) -> Result<Duration, u64> {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    match deadline_ms.checked_sub(now_ms).map(Duration::from_millis) {
        Some(left) if !left.is_zero() && left <= LONGEST => Ok(left),
        _ => Err(now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn a_real_deadline_is_the_time_left() {
        let now = 1_767_225_600_000;
        assert_eq!(
            remaining(now + 15_000, at(now)),
            Ok(Duration::from_secs(15))
        );
        assert_eq!(
            remaining(now + 900_000, at(now)),
            Ok(Duration::from_secs(900))
        );
    }

    #[test]
    fn what_local_runners_send_is_no_deadline() {
        let now = 1_767_225_600_000;
        // cargo-lambda 1.9.2's duration, zero, the past, the present, a day ahead, the end of time.
        for sent in [600_000, 0, now - 1, now, now + 86_400_000, u64::MAX] {
            assert_eq!(remaining(sent, at(now)), Err(now), "{sent}");
        }
    }
}
