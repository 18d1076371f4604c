//! One JSON line per request: its log fields, and the specification's metrics (calls, errors, p50/p95 latency) as
//! a CloudWatch Embedded Metric Format document, so they exist without an AWS SDK or a network call.
//!
//! Every log line is a JSON object with a `level` key: only then does Lambda filter a custom runtime's lines by
//! level (AWS_LAMBDA_LOG_FORMAT=JSON). The metric line has no `level`, so no log level can drop a metric. No line
//! holds the full authorization code, the state's signature or a password, at any level.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value as KvValue, VisitSource, VisitValue};
use log::{Level, LevelFilter, Metadata, Record};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::contract::Outcome;
use crate::event::Shape;

/// The targets of this function's own log lines; every other target is a library's.
const OWN_TARGETS: [&str; 5] = ["request", "init", "runtime", "database", "bootstrap"];

/// CloudWatch namespace of the EMF metrics.
pub const METRICS_NAMESPACE: &str = "Cafe24OAuthCallback";

/// The log filter: RUST_LOG when set (it can name modules), else Lambda's AWS_LAMBDA_LOG_LEVEL, else `info`. No
/// library writes a line per invocation (the Runtime API loop is the function's own), so at `info` and above a
/// request writes one line.
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
        _ => "info",
    }
    .to_owned()
}

/// The lowest level Lambda itself keeps of a JSON line with a `level` (AWS_LAMBDA_LOG_LEVEL), whatever RUST_LOG
/// lets through here. FATAL keeps no level this function writes.
static LAMBDA_KEEPS: OnceLock<LevelFilter> = OnceLock::new();

pub fn lambda_keeps(lambda_level: Option<&str>) -> LevelFilter {
    match lambda_level
        .map(|l| l.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("DEBUG") => LevelFilter::Debug,
        Some("INFO") => LevelFilter::Info,
        Some("WARN") => LevelFilter::Warn,
        Some("ERROR") => LevelFilter::Error,
        Some("FATAL") => LevelFilter::Off,
        _ => LevelFilter::Trace,
    }
}

pub fn init_logger() {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let _ = LAMBDA_KEEPS.set(lambda_keeps(lambda_level.as_deref()));
    let filter = log_filter(
        std::env::var("RUST_LOG").ok().as_deref(),
        lambda_level.as_deref(),
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
/// parameters (the code and the state) at DEBUG, and lambda_runtime's layers the raw event at TRACE.
struct LibrariesAtInfo(env_logger::Logger);

impl LibrariesAtInfo {
    fn allows(metadata: &Metadata) -> bool {
        let target = metadata.target();
        metadata.level() <= Level::Info
            || OWN_TARGETS.iter().any(|own| {
                target
                    .strip_prefix(own)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
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

/// The request's line: its log fields and its CloudWatch Embedded Metric Format document in one JSON object, one
/// write. No log level may drop the metrics: when the filter here holds the request's level back, the line keeps
/// only the metrics (no `level`, which Lambda never filters); when it lets the level through but Lambda's own level
/// would drop it (RUST_LOG let more through than AWS_LAMBDA_LOG_LEVEL), the metrics go on a line of their own.
/// `http_status` differs from the contract's status only when a redirect answered the request.
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
    let log = log::log_enabled!(target: "request", level).then(|| RequestLog {
        level: level.as_str(),
        target: "request",
        message: &message,
        outcome: outcome.name(),
        status: http_status,
        id: outcome.id(),
        elapsed_ms: ms(elapsed),
        database_ms: fields.database_time.map(ms),
        event: fields.shape.map(Shape::as_str),
        code_sha256: fields.code_fingerprint.as_deref(),
        state_payload: fields.state_payload.as_deref(),
        reason: reason.as_deref(),
        check: match outcome {
            Outcome::DatabaseFailed(e) => Some(e.failure.hint()),
            _ => None,
        },
    });
    let metrics = Metrics::new(function_name, status, elapsed, fields.database_time);
    let lambda_keeps_it = level <= *LAMBDA_KEEPS.get().unwrap_or(&LevelFilter::Trace);
    let lines = match log {
        Some(log) if lambda_keeps_it => [
            Some(RequestLine::new(request_id, Some(log), Some(metrics))),
            None,
        ],
        Some(log) => [
            Some(RequestLine::new(request_id, Some(log), None)),
            Some(RequestLine::new(request_id, None, Some(metrics))),
        ],
        None => [
            Some(RequestLine::new(request_id, None, Some(metrics))),
            None,
        ],
    };
    let mut text = Vec::with_capacity(1024);
    for line in lines.iter().flatten() {
        if serde_json::to_writer(&mut text, line).is_err() {
            return;
        }
        text.push(b'\n');
    }
    let _ = std::io::stdout().lock().write_all(&text);
}

#[derive(Serialize)]
struct RequestLine<'a> {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    log: Option<RequestLog<'a>>,
    request_id: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics<'a>>,
}

impl<'a> RequestLine<'a> {
    fn new(request_id: &'a str, log: Option<RequestLog<'a>>, metrics: Option<Metrics<'a>>) -> Self {
        RequestLine {
            log,
            request_id,
            metrics,
        }
    }
}

/// The log fields of a request's line.
#[derive(Serialize)]
struct RequestLog<'a> {
    level: &'static str,
    target: &'static str,
    message: &'a str,
    outcome: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    elapsed_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<&'static str>,
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
    crate::hex::hex(&Sha256::digest(code.as_bytes())[..6])
}

/// The EMF document of one request: the specification's invocation count, error count and latency (p50/p95 are
/// CloudWatch statistics on `Latency`), with `FunctionName` as the dimension.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metrics<'a> {
    #[serde(rename = "_aws")]
    aws: Aws,
    function_name: &'a str,
    callbacks: u8,
    saved: u8,
    rejected: u8,
    errors: u8,
    latency: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_latency: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aws {
    timestamp: u64,
    cloud_watch_metrics: [Directive; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive {
    namespace: &'static str,
    dimensions: [[&'static str; 1]; 1],
    metrics: &'static [Metric],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: &'static str,
    unit: &'static str,
}

const COUNT: &str = "Count";
const MS: &str = "Milliseconds";
/// The metrics a request can have; the database's latency only when the request reached the database.
const METRICS: [Metric; 6] = [
    Metric {
        name: "Callbacks",
        unit: COUNT,
    },
    Metric {
        name: "Saved",
        unit: COUNT,
    },
    Metric {
        name: "Rejected",
        unit: COUNT,
    },
    Metric {
        name: "Errors",
        unit: COUNT,
    },
    Metric {
        name: "Latency",
        unit: MS,
    },
    Metric {
        name: "DatabaseLatency",
        unit: MS,
    },
];

impl<'a> Metrics<'a> {
    pub fn new(
        function_name: &'a str,
        status: u16,
        elapsed: Duration,
        database: Option<Duration>,
    ) -> Self {
        let ms = |d: Duration| round_ms(d.as_secs_f64() * 1000.0);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Metrics {
            aws: Aws {
                timestamp,
                cloud_watch_metrics: [Directive {
                    namespace: METRICS_NAMESPACE,
                    dimensions: [["FunctionName"]],
                    metrics: if database.is_some() {
                        &METRICS
                    } else {
                        &METRICS[..5]
                    },
                }],
            },
            function_name,
            callbacks: 1,
            saved: u8::from(status == 200),
            rejected: u8::from((400..500).contains(&status)),
            errors: u8::from(status >= 500),
            latency: ms(elapsed),
            database_latency: database.map(ms),
        }
    }
}

pub fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
