//! The handler in-process, against a PostgreSQL 17 cluster the tests start: every row of the response contract,
//! each checking what the table holds afterwards. Split by what they test; the helpers are here.

mod config;
mod contract;
mod database;
mod properties;
mod redirects;
mod state;

use lambda_runtime::Context;
use serde_json::Value;

use super::*;
use crate::state::StateKey;
use devtools::postgres::{self, TestDatabase};
use devtools::{LOCAL_STATE_SECRET, fixture};

fn database() -> TestDatabase {
    postgres::shared()
        .and_then(|c| c.create_database())
        .unwrap()
}

/// An instance configured from `env` plus the local state secret and `extra`, as a deployed one reads its own.
fn app_with(env: Vec<(String, String)>, extra: &[(&str, &str)]) -> App {
    let mut env = env;
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    App::from_lookup(move |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    })
}

fn app_for(db: &TestDatabase) -> App {
    app_with(db.env(), &[])
}

/// An instance whose database is a port nobody listens on: any request that reached it would fail with 500.
fn app_without_database() -> App {
    let port = postgres::free_port().unwrap().to_string();
    app_with(
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), port),
            ("PGUSER".into(), "x".into()),
        ],
        &[],
    )
}

fn sign(payload: &str) -> String {
    StateKey::new(LOCAL_STATE_SECRET)
        .unwrap()
        .sign(payload)
        .unwrap()
}

/// An HTTP API (2.0) event for `raw_query`, from the real sample in `events/`.
fn http_event(method: &str, raw_query: &str) -> Value {
    let mut event = fixture("http-api", "success").unwrap();
    event["rawQueryString"] = raw_query.into();
    event["requestContext"]["http"]["method"] = method.into();
    event
}

/// A GET callback for `code` and `state`.
fn callback_event(code: &str, state: &str) -> Value {
    http_event("GET", &format!("code={code}&state={state}"))
}

/// What the handler answered: the status, the parsed body, and the whole response as JSON.
struct Answer {
    status: u16,
    body: Value,
    response: Value,
}

/// The handler on a runtime of its own, as in `serve` (the tests' own blocking clients stay outside it).
fn call(app: &App, event: Value) -> Answer {
    runtime().block_on(call_async(app, event))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn call_async(app: &App, event: Value) -> Answer {
    let response = handle(
        app,
        LambdaEvent::new(event::tests::parse(&event), Context::default()),
    )
    .await;
    let response = serde_json::to_value(&response).unwrap();
    Answer {
        status: response["statusCode"].as_u64().unwrap() as u16,
        body: serde_json::from_str(response["body"].as_str().unwrap()).unwrap(),
        response,
    }
}

impl Answer {
    /// An error answer: this status, exactly `ok` and `message`, the message containing `part`.
    fn assert_error(&self, status: u16, part: &str) {
        let body = &self.body;
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["ok"], false, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "an error body is exactly ok and message: {body}"
        );
    }
}
