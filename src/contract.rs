//! The response contract in one place: every way a request can end, the status and message each one gets, and
//! the proxy response that API Gateway (payload 1.0 and 2.0) and function URLs turn into HTTP.

use serde::Serialize;

use crate::config::ConfigError;
use crate::database::DatabaseError;
use crate::event::{EventError, Shape};
use crate::params::ParamError;
use crate::redirect::Redirects;
use crate::state::AgeError;

#[derive(Debug)]
pub enum Outcome {
    Saved {
        id: i64,
    },
    Repeat {
        id: i64,
    },
    /// Not an HTTP event of any shape we know (a direct invoke, a queue message, ...).
    NotHttp,
    /// An HTTP event whose query parameters are not strings.
    MalformedEvent,
    MethodNotAllowed,
    BadParams(ParamError),
    /// Cafe24 sent `error` instead of a code: the merchant declined. Only a tidy error code is repeated.
    Declined {
        error: Option<String>,
    },
    ForgedState,
    StaleState(AgeError),
    CodeTaken,
    StateTaken,
    Misconfigured(ConfigError),
    DatabaseFailed(DatabaseError),
}

impl From<EventError> for Outcome {
    fn from(error: EventError) -> Self {
        match error {
            EventError::NotHttp => Outcome::NotHttp,
            EventError::MalformedQuery => Outcome::MalformedEvent,
        }
    }
}

impl Outcome {
    /// The status and message of each outcome: the contract's table.
    pub fn contract(&self) -> (u16, String) {
        match self {
            Outcome::Saved { .. } | Outcome::Repeat { .. } => (200, "Saved".into()),
            Outcome::NotHttp => (
                400,
                "Bad request: expected an API Gateway or function URL HTTP event".into(),
            ),
            Outcome::MalformedEvent => (400, "Bad request: malformed query parameters".into()),
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
            Outcome::DatabaseFailed(e) if e.failure.misconfigured() => {
                (500, "server misconfigured".into())
            }
            Outcome::DatabaseFailed(_) => {
                (500, "Database unavailable: the code was not saved".into())
            }
        }
    }

    pub fn id(&self) -> Option<i64> {
        match self {
            Outcome::Saved { id } | Outcome::Repeat { id } => Some(*id),
            _ => None,
        }
    }

    /// One word for the log line (and the `reason` of a failure redirect).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Saved { .. } => "saved",
            Outcome::Repeat { .. } => "repeat",
            Outcome::NotHttp | Outcome::MalformedEvent => "not_http",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BadParams(_) => "bad_params",
            Outcome::Declined { .. } => "declined",
            Outcome::ForgedState => "forged_state",
            Outcome::StaleState(AgeError::Expired) => "expired_state",
            Outcome::StaleState(_) => "invalid_state",
            Outcome::CodeTaken => "code_taken",
            Outcome::StateTaken => "state_taken",
            Outcome::Misconfigured(_) => "misconfigured",
            Outcome::DatabaseFailed(e) => e.failure.name(),
        }
    }
}

/// The proxy-integration response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub status_code: u16,
    pub headers: Headers,
    /// Payload 2.0 only. API Gateway and function URLs accept an answer without it, but cargo-lambda's local
    /// HTTP front reads a 2.0 answer with the list required and turns one without it into its own 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookies: Option<[(); 0]>,
    pub body: String,
    pub is_base64_encoded: bool,
}

#[derive(Debug, Serialize)]
pub struct Headers {
    #[serde(rename = "Content-Type")]
    content_type: &'static str,
    #[serde(rename = "Cache-Control")]
    cache_control: &'static str,
    #[serde(rename = "X-Content-Type-Options")]
    content_type_options: &'static str,
    /// The URL that reached us carries a live authorization code: no page may pass it on.
    #[serde(rename = "Referrer-Policy")]
    referrer_policy: &'static str,
    #[serde(rename = "Allow", skip_serializing_if = "Option::is_none")]
    allow: Option<&'static str>,
    #[serde(rename = "Location", skip_serializing_if = "Option::is_none")]
    location: Option<String>,
}

/// The answer to `outcome`, for an event of `shape` (unknown when the event was not HTTP); a 302 instead of the
/// JSON answer when a redirect page is configured for it.
pub fn respond(outcome: &Outcome, shape: Option<Shape>, redirects: Option<&Redirects>) -> Response {
    let (status, message) = outcome.contract();
    let body = match outcome.id() {
        Some(id) => format!(r#"{{"ok":true,"message":"Saved","id":{id}}}"#),
        None => format!(
            r#"{{"ok":false,"message":{}}}"#,
            serde_json::Value::from(message)
        ),
    };
    let location = redirects.and_then(|r| match outcome {
        _ if status == 200 => r.success.clone(),
        // Not a browser, or nothing we can trust to send it on: the JSON answer stands.
        Outcome::NotHttp | Outcome::MalformedEvent | Outcome::Misconfigured(_) => None,
        _ if status >= 500 => r.failure_location("server_error"),
        _ => r.failure_location(outcome.name()),
    });
    Response {
        status_code: if location.is_some() { 302 } else { status },
        headers: Headers {
            content_type: "application/json",
            cache_control: "no-store",
            content_type_options: "nosniff",
            referrer_policy: "no-referrer",
            allow: (status == 405).then_some("GET"),
            location,
        },
        cookies: shape.filter(|s| s.is_payload_v2()).map(|_| []),
        body,
        is_base64_encoded: false,
    }
}
