//! D7: one JSON log line per request, and the seed's metrics as CloudWatch Embedded Metric Format lines.
//!
//! Every log line is a JSON object with a `level` key: only then does Lambda filter a custom runtime's lines by
//! level (AWS_LAMBDA_LOG_FORMAT=JSON). The metric line has no `level`, so no log level can drop a metric.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value as KvValue, VisitSource, VisitValue};
use serde_json::{Map, Value, json};

/// CloudWatch namespace of the EMF metrics.
pub const METRICS_NAMESPACE: &str = "Cafe24OAuthCallback";

/// The log filter: RUST_LOG when set (it can name modules), else Lambda's AWS_LAMBDA_LOG_LEVEL, else `info`.
/// At `info`, lambda_runtime's own line for every invocation is held back: D7 wants one line per request.
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
    let _ = env_logger::Builder::new()
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
        .try_init();
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
/// token service's logs, useless to anyone who would exchange it (D7: never the full code).
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
