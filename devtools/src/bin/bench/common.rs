//! What every section uses: the events, the samples, and the checks on what a process did.

use std::time::Duration;

use devtools::runtime_api::Invocation;
use devtools::{LOCAL_STATE_SECRET, fixture, sign_state};
use serde_json::Value;

/// How long any one request, or a process's first answer, may take before the run is given up.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// A pause before each cold measurement, so the previous one's teardown (a killed process, its server backend
/// exiting) is not charged to the next.
pub const SETTLE: Duration = Duration::from_millis(20);

/// A section of the report that may not run on every machine.
pub enum Section<T> {
    Measured(T),
    /// Why not, in the report's words.
    Skipped(String),
}

/// Unique (code, state) pairs, states signed as the function expects, and the events that carry them.
pub struct Pairs {
    template: Value,
    next: u64,
}

impl Pairs {
    pub fn new() -> Result<Pairs, String> {
        Ok(Pairs {
            template: fixture("http-api", "success")?,
            next: 0,
        })
    }

    pub fn pair(&mut self) -> (String, String) {
        self.next += 1;
        let n = self.next;
        let state = sign_state(LOCAL_STATE_SECRET, &format!("benchmall:n{n:08}"));
        (format!("bench-code-{n:08}"), state)
    }

    pub fn event(&mut self) -> Value {
        let (code, state) = self.pair();
        let mut event = self.template.clone();
        event["rawQueryString"] = format!("code={code}&state={state}").into();
        event
    }
}

/// The sorted samples of one measurement.
pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort();
        Samples(samples)
    }

    /// Nearest-rank percentile, `p` in (0, 1].
    pub fn pct(&self, p: f64) -> Duration {
        let n = self.0.len();
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.0.get(rank - 1).copied().unwrap_or_default()
    }

    pub fn p50(&self) -> Duration {
        self.pct(0.50)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The function answered 200 with the id of a new row.
pub fn check_saved(invocation: &Invocation) -> Result<(), String> {
    match (invocation.status(), invocation.body()) {
        (Some(200), Some(body)) if body["id"].is_i64() => Ok(()),
        _ => Err(format!(
            "the function did not save a new pair: {:?}",
            invocation.reply
        )),
    }
}

/// A measured answer: our function must have saved a new pair, the hello world must have answered 200.
pub fn check_answer(
    binary: &std::path::Path,
    invocation: &Invocation,
    must_save: bool,
) -> Result<(), String> {
    if must_save {
        return check_saved(invocation);
    }
    if invocation.status() != Some(200) {
        return Err(format!(
            "{} did not answer 200: {:?}",
            binary.display(),
            invocation.reply
        ));
    }
    Ok(())
}

/// Peak resident set size of a live process, in bytes (`VmHWM` of `/proc/<pid>/status`, in KiB).
pub fn vm_hwm(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no VmHWM"))
}
