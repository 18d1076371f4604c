//! One JSON log line per request, and the seed's metrics (calls, errors, p50/p95 latency) as CloudWatch Embedded
//! Metric Format lines, so they exist without an AWS SDK or a network call.
//!
//! Every log line is a JSON object with a `level` key: only then does Lambda filter a custom runtime's lines by
//! level (AWS_LAMBDA_LOG_FORMAT=JSON). The metric line has no `level`, so no log level can drop a metric. No line
//! holds the full authorization code, the state's signature or a password, at any level.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value as KvValue, VisitSource, VisitValue};
use log::{Level, Metadata, Record};
use serde_json::{Map, Value, json};

use crate::contract::Outcome;
use crate::event::Shape;

/// The targets of this function's own log lines; every other target is a library's.
const OWN_TARGETS: [&str; 5] = ["request", "init", "runtime", "database", "bootstrap"];

/// CloudWatch namespace of the EMF metrics.
pub const METRICS_NAMESPACE: &str = "Cafe24OAuthCallback";

/// The log filter: RUST_LOG when set (it can name modules), else Lambda's AWS_LAMBDA_LOG_LEVEL, else `info`.
/// At `info`, lambda_runtime's own line for every invocation is held back: one line per request.
pub fn log_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        return spec.to_owned();
    }
    match lambda_level
        .map(|l| l.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        // FATAL has no `log` level: errors are the closest that still shows.
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info,lambda_runtime=warn",
    }
    .to_owned()
}

pub fn init_logger() {
    let filter = log_filter(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let logger = env_logger::Builder::new()
        .parse_filters(&filter)
        .target(env_logger::Target::Stdout)
        .format(|buf, record| {
            let mut line = Map::new();
            line.insert("level".into(), record.level().as_str().into());
            line.insert("target".into(), record.target().into());
            line.insert("message".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut JsonFields(&mut line));
            writeln!(buf, "{}", Value::Object(line))
        })
        .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(LibrariesAtInfo(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// Whatever the filter says, a library's lines pass at INFO at most: below it, tokio-postgres logs a statement's
/// parameters (the code and the state) at DEBUG, and lambda_runtime the raw event at TRACE.
struct LibrariesAtInfo(env_logger::Logger);

impl LibrariesAtInfo {
    fn allows(metadata: &Metadata) -> bool {
        metadata.level() <= Level::Info
            || OWN_TARGETS
                .iter()
                .any(|own| metadata.target().split("::").next() == Some(own))
    }
}

impl log::Log for LibrariesAtInfo {
    fn enabled(&self, metadata: &Metadata) -> bool {
        Self::allows(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if Self::allows(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// What the log line says about a request besides its outcome, filled in as the request goes.
#[derive(Default)]
pub struct LogFields {
    pub shape: Option<Shape>,
    pub code_fingerprint: Option<String>,
    pub state_payload: Option<String>,
    pub database_time: Option<Duration>,
}

/// The request's log line and its metric line. `http_status` differs from the contract's status only when a
/// redirect answered the request.
pub fn log_request(
    function_name: &str,
    request_id: &str,
    outcome: &Outcome,
    fields: &LogFields,
    elapsed: Duration,
    http_status: u16,
) {
    let (status, message) = outcome.contract();
    let level = match status {
        200 => Level::Info,
        500.. => Level::Error,
        _ => Level::Warn,
    };
    let ms = |d: Duration| round_ms(d.as_secs_f64() * 1000.0);
    let reason = match outcome {
        Outcome::Misconfigured(e) => Some(e.to_string()),
        Outcome::DatabaseFailed(e) => Some(e.detail.clone()),
        _ => None,
    };
    let check = match outcome {
        Outcome::DatabaseFailed(e) => Some(e.failure.hint()),
        _ => None,
    };
    log::log!(
        target: "request",
        level,
        request_id = request_id,
        outcome = outcome.name(),
        status = http_status,
        id = outcome.id(),
        elapsed_ms = ms(elapsed),
        database_ms = fields.database_time.map(ms),
        event = fields.shape.map(Shape::as_str),
        code_sha256 = fields.code_fingerprint.as_deref(),
        state_payload = fields.state_payload.as_deref(),
        reason = reason.as_deref(),
        check = check;
        "{message}"
    );
    emit_metrics(&metrics_line(
        function_name,
        request_id,
        status,
        elapsed.as_secs_f64() * 1000.0,
        fields.database_time.map(|d| d.as_secs_f64() * 1000.0),
    ));
}

struct JsonFields<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), log::kv::Error> {
        let mut json = JsonValue(None);
        value.visit(&mut json)?;
        // An absent field (`None`) is left out rather than written as null.
        if let Some(json) = json.0 {
            self.0.insert(key.as_str().to_owned(), json);
        }
        Ok(())
    }
}

struct JsonValue(Option<Value>);

impl<'v> VisitValue<'v> for JsonValue {
    fn visit_any(&mut self, value: KvValue<'_>) -> Result<(), log::kv::Error> {
        self.0 = Some(value.to_string().into());
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), log::kv::Error> {
        self.0 = None;
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
}

/// A short, stable fingerprint of an authorization code: enough to correlate a log line with a row or with the
/// token service's logs, useless to anyone who would exchange it (never the full code).
pub fn code_fingerprint(code: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(code.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The EMF document of one request: the seed's invocation count, error count and latency (p50/p95 are
/// CloudWatch statistics on `Latency`).
pub fn metrics_line(
    function_name: &str,
    request_id: &str,
    status: u16,
    elapsed_ms: f64,
    database_ms: Option<f64>,
) -> Value {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut metrics = vec![
        json!({"Name": "Callbacks", "Unit": "Count"}),
        json!({"Name": "Saved", "Unit": "Count"}),
        json!({"Name": "Rejected", "Unit": "Count"}),
        json!({"Name": "Errors", "Unit": "Count"}),
        json!({"Name": "Latency", "Unit": "Milliseconds"}),
    ];
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": [],
            }],
        },
        "FunctionName": function_name,
        "RequestId": request_id,
        "Callbacks": 1,
        "Saved": u8::from(status == 200),
        "Rejected": u8::from((400..500).contains(&status)),
        "Errors": u8::from(status >= 500),
        "Latency": round_ms(elapsed_ms),
    });
    if let Some(ms) = database_ms {
        metrics.push(json!({"Name": "DatabaseLatency", "Unit": "Milliseconds"}));
        line["DatabaseLatency"] = round_ms(ms).into();
    }
    line["_aws"]["CloudWatchMetrics"][0]["Metrics"] = Value::Array(metrics);
    line
}

pub fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Writes the metric line straight to stdout: it must not depend on the log level.
pub fn emit_metrics(line: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests;
