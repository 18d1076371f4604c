//! The public OAuth redirect endpoint of a Cafe24 app: `GET /oauth/callback?code=...&state=...` through API
//! Gateway or a function URL -> one row in `cafe24.oauth_authorization_codes` -> `{"ok":true,"message":"Saved",
//! "id":123}`; anything else -> a clear JSON error and nothing stored. The decisions (D1..D9) are in the README.
//!
//! The request path reads top to bottom: event -> parameters -> state check -> store -> response.

mod database;
mod event;
mod mint;
mod params;
mod rds_iam;
mod redirect;
mod secrets;
mod state;
mod telemetry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

use database::{Database, DatabaseError, Settings, Stored};
use event::{EventError, HttpRequest};
use params::{Callback, ParamError};
use redirect::Redirects;
use secrets::StateKeySource;
use state::AgeError;

/// Kept from Lambda's deadline to send the answer.
const ANSWER_MARGIN_MS: u64 = 500;

/// What the function needs to serve; built once per instance from the environment.
struct App {
    /// `Err` holds why the configuration is unusable: then every request is refused (D4: fail closed).
    config: Result<Ready, String>,
    function_name: String,
}

struct Ready {
    state_key: Arc<StateKeySource>,
    /// D8: with `STATE_MAX_AGE_SECONDS` set, states must follow `mall_id:nonce:issued_at` and be this fresh.
    state_max_age: Option<u64>,
    redirects: Redirects,
    database: Arc<Database>,
}

impl App {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        App {
            config: Ready::from_lookup(var),
            function_name: var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        }
    }
}

impl Ready {
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let state_key = Arc::new(StateKeySource::from_lookup(&var)?);
        let state_max_age = match var("STATE_MAX_AGE_SECONDS") {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(seconds) if seconds > 0 => Some(seconds),
                _ => {
                    return Err(format!(
                        "STATE_MAX_AGE_SECONDS must be a positive number of seconds, got {v:?}"
                    ));
                }
            },
            None => None,
        };
        let redirects = Redirects::from_lookup(&var)?;
        let database = Arc::new(Database::new(Settings::from_lookup(&var)?));
        Ok(Ready {
            state_key,
            state_max_age,
            redirects,
            database,
        })
    }
}

/// Every way a request can end, and (in `contract`) the status and message each one gets: D3 in one place.
#[derive(Debug)]
enum Outcome {
    Saved { id: i64 },
    Repeat { id: i64 },
    NotHttp(EventError),
    MethodNotAllowed,
    BadParams(ParamError),
    Declined { error: Option<String> },
    ForgedState,
    StaleState(AgeError),
    CodeTaken,
    StateTaken,
    Misconfigured(String),
    DatabaseFailed(DatabaseError),
}

impl Outcome {
    fn contract(&self) -> (u16, String) {
        match self {
            Outcome::Saved { .. } | Outcome::Repeat { .. } => (200, "Saved".into()),
            Outcome::NotHttp(EventError::NotHttp) => (
                400,
                "Bad request: expected an API Gateway or function URL HTTP event".into(),
            ),
            Outcome::NotHttp(EventError::MalformedQuery) => {
                (400, "Bad request: malformed query parameters".into())
            }
            Outcome::BadParams(e) => (400, e.message()),
            Outcome::Declined { error: Some(e) } => (400, format!("Authorization declined: {e}")),
            Outcome::Declined { error: None } => (400, "Authorization declined".into()),
            Outcome::ForgedState => (403, "Invalid state signature".into()),
            Outcome::StaleState(AgeError::Expired) => {
                (403, "Expired state: start the authorization again".into())
            }
            Outcome::StaleState(AgeError::FromTheFuture) => {
                (403, "Invalid state: issued in the future".into())
            }
            Outcome::StaleState(AgeError::NotConvention) => (
                403,
                "Invalid state: payload is not mall_id:nonce:issued_at".into(),
            ),
            Outcome::MethodNotAllowed => (405, "Method not allowed: use GET".into()),
            Outcome::CodeTaken => (
                409,
                "Conflict: this code was already stored with another state".into(),
            ),
            Outcome::StateTaken => (
                409,
                "Conflict: this state was already used with another code".into(),
            ),
            Outcome::Misconfigured(_) => (500, "server misconfigured".into()),
            Outcome::DatabaseFailed(e) if e.misconfigured => (500, "server misconfigured".into()),
            Outcome::DatabaseFailed(_) => {
                (500, "Database unavailable: the code was not saved".into())
            }
        }
    }

    fn id(&self) -> Option<i64> {
        match self {
            Outcome::Saved { id } | Outcome::Repeat { id } => Some(*id),
            _ => None,
        }
    }

    /// One word for the log line.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Saved { .. } => "saved",
            Outcome::Repeat { .. } => "repeat",
            Outcome::NotHttp(_) => "not_http",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BadParams(_) => "bad_params",
            Outcome::Declined { .. } => "declined",
            Outcome::ForgedState => "forged_state",
            Outcome::StaleState(AgeError::Expired) => "expired_state",
            Outcome::StaleState(_) => "invalid_state",
            Outcome::CodeTaken => "code_taken",
            Outcome::StateTaken => "state_taken",
            Outcome::Misconfigured(_) => "misconfigured",
            Outcome::DatabaseFailed(e) => e.kind,
        }
    }
}

/// What the log line says about a request besides its outcome; filled in as the request goes.
#[derive(Default)]
struct Trace {
    shape: Option<&'static str>,
    code_fingerprint: Option<String>,
    state_payload: Option<String>,
    database_time: Option<Duration>,
}

async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let started = Instant::now();
    let mut trace = Trace::default();
    let outcome = callback(app, &event.payload, event.context.deadline, &mut trace).await;
    let response = respond(
        &outcome,
        app.config.as_ref().ok().map(|ready| &ready.redirects),
    );
    let http_status = response["statusCode"].as_u64().unwrap_or_default();
    log_request(
        app,
        &event.context.request_id,
        &outcome,
        &trace,
        started.elapsed(),
        http_status,
    );
    Ok(response)
}

async fn callback(app: &App, event: &Value, deadline_ms: u64, trace: &mut Trace) -> Outcome {
    let ready = match &app.config {
        Ok(ready) => ready,
        Err(why) => return Outcome::Misconfigured(why.clone()),
    };

    let request = match HttpRequest::from_event(event) {
        Ok(request) => request,
        Err(e) => return Outcome::NotHttp(e),
    };
    trace.shape = Some(request.shape.as_str());
    if request.method != "GET" {
        return Outcome::MethodNotAllowed;
    }

    let (code, state) = match Callback::from_request(&request) {
        Ok(Callback::Authorization { code, state }) => (code, state),
        Ok(Callback::Declined { error }) => {
            return Outcome::Declined {
                error: error.map(str::to_owned),
            };
        }
        Err(e) => return Outcome::BadParams(e),
    };
    trace.code_fingerprint = Some(telemetry::code_fingerprint(code));

    // D4: checked before the database is touched. A key kept in Secrets Manager is read on first use (D9).
    if !ready.state_key.is_ready() {
        let source = Arc::clone(&ready.state_key);
        match tokio::task::spawn_blocking(move || source.key().map(drop)).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Outcome::Misconfigured(why),
            Err(join) => return Outcome::Misconfigured(join.to_string()),
        }
    }
    let state_key = match ready.state_key.key() {
        Ok(key) => key,
        Err(why) => return Outcome::Misconfigured(why),
    };
    let Some(signed) = state_key.verify(state) else {
        return Outcome::ForgedState;
    };
    trace.state_payload = Some(signed.payload.to_owned());
    if let Some(max_age) = ready.state_max_age {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Err(e) = state::check_age(signed.payload, max_age, now) {
            return Outcome::StaleState(e);
        }
    }

    // D6: the blocking client works on the blocking pool, bounded in time; D5: the database decides repeats.
    let database_started = Instant::now();
    let stored = ready
        .database
        .store_code(code, state, request_deadline(deadline_ms))
        .await;
    trace.database_time = Some(database_started.elapsed());
    match stored {
        Ok(Stored::New { id }) => Outcome::Saved { id },
        Ok(Stored::Repeat { id }) => Outcome::Repeat { id },
        Ok(Stored::CodeTaken) => Outcome::CodeTaken,
        Ok(Stored::StateTaken) => Outcome::StateTaken,
        Err(e) => Outcome::DatabaseFailed(e),
    }
}

/// Lambda's deadline for this invocation, less the time to answer: past it Lambda kills the process and API
/// Gateway answers 502 instead of our 500. Without one (a test harness), the database's own bounds apply.
fn request_deadline(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let remaining = match deadline_ms {
        0 => Duration::from_secs(3600),
        _ => Duration::from_millis(
            deadline_ms
                .saturating_sub(now_ms)
                .saturating_sub(ANSWER_MARGIN_MS),
        ),
    };
    Instant::now() + remaining
}

/// The proxy-integration response; API Gateway (1.0 and 2.0) and function URLs all read this shape.
fn respond(outcome: &Outcome, redirects: Option<&Redirects>) -> Value {
    let (status, message) = outcome.contract();
    let body = match outcome.id() {
        Some(id) => format!(r#"{{"ok":true,"message":"Saved","id":{id}}}"#),
        None => format!(r#"{{"ok":false,"message":{}}}"#, Value::from(message)),
    };
    let mut headers = json!({
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        // The URL that reached us carries a live authorization code.
        "Referrer-Policy": "no-referrer",
    });
    if status == 405 {
        headers["Allow"] = "GET".into();
    }
    let location = redirects.and_then(|r| match outcome {
        _ if status == 200 => r.success.clone(),
        // Not a browser, or nothing we can trust to send it on: the JSON answer stands.
        Outcome::NotHttp(_) | Outcome::Misconfigured(_) => None,
        _ if status >= 500 => r.failure_location("server_error"),
        _ => r.failure_location(outcome.name()),
    });
    let status = match location {
        Some(location) => {
            headers["Location"] = location.into();
            302
        }
        None => status,
    };
    json!({"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": false})
}

/// `http_status` differs from the contract's status only when a redirect answered the request.
fn log_request(
    app: &App,
    request_id: &str,
    outcome: &Outcome,
    trace: &Trace,
    elapsed: Duration,
    http_status: u64,
) {
    let (status, message) = outcome.contract();
    let level = match status {
        200 => log::Level::Info,
        500.. => log::Level::Error,
        _ => log::Level::Warn,
    };
    let ms = |d: Duration| telemetry::round_ms(d.as_secs_f64() * 1000.0);
    let (reason, hint) = match outcome {
        Outcome::Misconfigured(why) => (Some(why.as_str()), None),
        Outcome::DatabaseFailed(e) => (Some(e.detail.as_str()), Some(e.hint)),
        _ => (None, None),
    };
    log::log!(
        target: "request",
        level,
        request_id = request_id,
        outcome = outcome.name(),
        status = http_status,
        id = outcome.id(),
        elapsed_ms = ms(elapsed),
        database_ms = trace.database_time.map(ms),
        event = trace.shape,
        code_sha256 = trace.code_fingerprint.as_deref(),
        state_payload = trace.state_payload.as_deref(),
        reason = reason,
        check = hint;
        "{message}"
    );
    let metrics = telemetry::metrics_line(
        &app.function_name,
        request_id,
        status,
        elapsed.as_secs_f64() * 1000.0,
        trace.database_time.map(|d| d.as_secs_f64() * 1000.0),
    );
    telemetry::emit_metrics(&metrics);
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("mint-state") {
        return mint::run(&args[1..]);
    }
    telemetry::init_logger();
    match serve() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!(target: "runtime", "{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn serve() -> Result<(), Error> {
    let app: &'static App = Box::leak(Box::new(App::from_env()));
    match &app.config {
        Ok(ready) => {
            log::info!(target: "init", database = ready.database.settings().target(None).as_str(); "ready")
        }
        Err(why) => log::error!(target: "init", "server misconfigured: {why}"),
    }
    lambda_runtime::run(service_fn(move |event| handle(app, event))).await
}

#[cfg(test)]
mod tests;
