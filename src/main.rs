//! The public OAuth redirect endpoint of a Cafe24 app: `GET /oauth/callback?code=...&state=...` through API
//! Gateway or a function URL -> one row in `cafe24.oauth_authorization_codes` -> `{"ok":true,"message":"Saved",
//! "id":123}`; anything else -> a clear JSON error and nothing stored.
//!
//! The request path reads top to bottom: event -> parameters -> state check -> store -> response.

mod config;
mod contract;
mod database;
mod deadline;
mod event;
mod extension;
mod hex;
mod mint;
mod params;
mod rds_iam;
mod redirect;
mod runtime;
mod secret;
mod state;
mod state_key;
mod telemetry;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent};

use config::{ConfigError, Lookup};
use contract::{Outcome, Response};
use database::{Database, Settings, Stored};
use event::{Event, HttpRequest, Loose};
use extension::SecretsExtension;
use params::Callback;
use redirect::Redirects;
use state::StateAge;
use state_key::StateKeySource;
use telemetry::LogFields;

/// How long the first read of a state key kept in Secrets Manager may take, at most.
const STATE_KEY_READ: Duration = Duration::from_secs(5);

/// An instance: what it serves requests with, or why it cannot (then it refuses every request: it fails closed).
struct App {
    service: Result<Service, ConfigError>,
    function_name: String,
}

/// What the environment configured, read once when the instance starts.
struct Service {
    state_key: StateKeySource,
    state_age: StateAge,
    redirects: Redirects,
    database: Database,
}

impl App {
    fn from_lookup(var: impl Lookup) -> Self {
        App {
            service: Service::from_lookup(&var),
            function_name: var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        }
    }
}

impl Service {
    fn from_lookup(var: &impl Lookup) -> Result<Self, ConfigError> {
        let extension = SecretsExtension::from_lookup(var)?;
        Ok(Service {
            state_key: StateKeySource::from_lookup(var, &extension)?,
            state_age: StateAge::from_lookup(var)?,
            redirects: Redirects::from_lookup(var)?,
            database: Database::new(Settings::from_lookup(var, &extension)?),
        })
    }
}

async fn handle(app: &App, event: LambdaEvent<Loose<Event>>) -> Response {
    let started = Instant::now();
    let mut fields = LogFields::default();
    let outcome = callback(app, &event.payload, event.context.deadline, &mut fields).await;
    let redirects = app.service.as_ref().ok().map(|s| &s.redirects);
    let response = contract::respond(&outcome, fields.shape, redirects);
    telemetry::log_request(
        &app.function_name,
        &event.context.request_id,
        &outcome,
        &fields,
        started.elapsed(),
        response.status_code,
    );
    response
}

async fn callback(
    app: &App,
    event: &Loose<Event>,
    deadline_ms: u64,
    fields: &mut LogFields,
) -> Outcome {
    let service = match &app.service {
        Ok(service) => service,
        Err(why) => return Outcome::Misconfigured(why.clone()),
    };

    let request = match HttpRequest::from_event(event) {
        Ok(request) => request,
        Err(e) => return e.into(),
    };
    fields.shape = Some(request.shape);
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
    fields.code_fingerprint = Some(telemetry::code_fingerprint(code));

    // The state is checked before the database is touched.
    let deadline = deadline::for_invocation(deadline_ms);
    let read_by = Instant::now() + STATE_KEY_READ;
    let key = match service
        .state_key
        .key(deadline.map_or(read_by, |d| d.min(read_by)))
        .await
    {
        Ok(key) => key,
        Err(why) => return Outcome::Misconfigured(why),
    };
    let Some(signed) = key.verify(state) else {
        return Outcome::ForgedState;
    };
    fields.state_payload = Some(signed.payload.to_owned());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Err(e) = service.state_age.check(signed.payload, now) {
        return Outcome::StaleState(e);
    }

    // The database decides repeats and conflicts.
    let database_started = Instant::now();
    let stored = service.database.store_code(code, state, deadline).await;
    fields.database_time = Some(database_started.elapsed());
    match stored {
        Ok(Stored::New { id }) => Outcome::Saved { id },
        Ok(Stored::Repeat { id }) => Outcome::Repeat { id },
        Ok(Stored::CodeTaken) => Outcome::CodeTaken,
        Ok(Stored::StateTaken) => Outcome::StateTaken,
        Err(e) => Outcome::DatabaseFailed(e),
    }
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
    let app: &'static App = Box::leak(Box::new(App::from_lookup(config::from_env)));
    match &app.service {
        Ok(service) => {
            log::info!(target: "init", database = service.database.settings().target(None).as_str(); "ready")
        }
        Err(why) => log::error!(target: "init", "server misconfigured: {why}"),
    }
    runtime::run(move |event| handle(app, event)).await
}

#[cfg(test)]
mod tests;
