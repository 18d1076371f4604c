//! The Lambda Runtime API loop: ask for the next invocation, run the handler, post its answer; one at a time.
//!
//! lambda_runtime 1.5's own loop (`lambda_runtime::run`) reads an invocation's headers before any handler or layer
//! sees them: it panics when `Lambda-Runtime-Deadline-Ms` is missing, and ends the process when that header or the
//! client context is not what Lambda itself sends. Local runners and emulators send exactly such things (see
//! `deadline.rs`), and an instance that dies there loses the request and every one after it. So the function runs
//! this loop instead, on the same crates (lambda_runtime's `LambdaEvent` and `Context`, its Runtime API client):
//! the request id is the one header it needs; a deadline it cannot read counts as no deadline; the rest (client
//! context, Cognito identity, X-Ray trace id) it has no use for and never parses.
//!
//! It also reads each answer of the Runtime API to its end, which lambda_runtime 1.5 does not for a 202: the
//! connection then stays open for the next invocation instead of a new one per request. A kept connection can be
//! closed by the server between two requests, so a request that fails on one is sent once more, on a new one.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use lambda_runtime::{Context, Diagnostic, Error, LambdaEvent};
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{Client, build_request};
use serde::Serialize;
use serde::de::DeserializeOwned;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
const FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
/// Sent by Lambda Managed Instances with each invocation, and expected back with its answer.
const INVOCATION_ID: &str = "lambda-runtime-invocation-id";
/// The reply to a posted answer is a few bytes that arrive with its head. One that has not ended by then never
/// will (a server that keeps the body open): the connection is dropped rather than waited on.
const REPLY_WAIT: Duration = Duration::from_secs(1);
/// Before asking again after something that was no invocation (an emulator's 204, an event without a request id),
/// so that such a server is not asked thousands of times a second.
const PAUSE_AFTER_NOTHING: Duration = Duration::from_millis(100);

/// Serves invocations until the Runtime API cannot be reached (then Lambda ends the instance).
pub async fn run<T, R, F, Fut>(mut handler: F) -> Result<(), Error>
where
    T: DeserializeOwned,
    R: Serialize,
    F: FnMut(LambdaEvent<T>) -> Fut,
    Fut: Future<Output = R>,
{
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .map_err(|_| "AWS_LAMBDA_RUNTIME_API is not set: not running in Lambda or a runner")?;
    let client = Client::builder().with_endpoint(endpoint(&api)?).build()?;
    loop {
        let next = next::<T>(&client)
            .await
            .map_err(|e| format!("GET {NEXT}: {}", causes(&*e)))?;
        let Some(invocation) = next else {
            tokio::time::sleep(PAUSE_AFTER_NOTHING).await;
            continue;
        };
        let answer = match invocation.payload {
            Ok(payload) => {
                let response = handler(LambdaEvent::new(payload, invocation.context)).await;
                serde_json::to_vec(&response)
                    .map_err(|e| diagnostic("Runtime.SerializationError", e))
            }
            Err(e) => {
                log::error!(
                    target: "runtime",
                    request_id = invocation.context.request_id.as_str();
                    "the event is not JSON ({e}): answered with an error"
                );
                Err(diagnostic("Runtime.UnmarshalError", e))
            }
        };
        post(&client, &invocation.path_id, invocation.id, answer).await;
    }
}

/// One invocation as the Runtime API handed it out.
struct Invocation<T> {
    context: Context,
    /// The request id as a path segment, percent-encoded.
    path_id: String,
    /// The event, or why it is not one.
    payload: Result<T, serde_json::Error>,
    /// Lambda Managed Instances' id for the invocation, to be sent back with the answer.
    id: Option<HeaderValue>,
}

/// The next invocation; `None` when the answer was none (a 204, or no request id: nowhere to answer).
async fn next<T: DeserializeOwned>(client: &Client) -> Result<Option<Invocation<T>>, Error> {
    let get = || {
        build_request()
            .method(Method::GET)
            .uri(NEXT)
            .body(Body::empty())
    };
    let (parts, event) = send(client, get).await?.into_parts();
    let event = event.collect().await?.to_bytes();
    if parts.status == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    if !parts.status.is_success() {
        return Err(format!("answered {}", parts.status).into());
    }
    let Some(raw_id) = parts
        .headers
        .get(REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|id| !id.is_empty())
    else {
        log::error!(target: "runtime", "an invocation without {REQUEST_ID}: skipped");
        return Ok(None);
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let mut context = Context::default();
    context.request_id = String::from_utf8_lossy(raw_id).into_owned();
    context.deadline = header(DEADLINE_MS)
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    context.invoked_function_arn = header(FUNCTION_ARN).unwrap_or_default().to_owned();
    Ok(Some(Invocation {
        context,
        path_id: path_segment(raw_id),
        payload: serde_json::from_slice(&event),
        id: parts.headers.get(INVOCATION_ID).cloned(),
    }))
}

/// Posts the answer, or the error that stands for it, and reads the Runtime API's reply (so the connection carries
/// the next request). A failure here ends this invocation only, logged: an answer refused (too large, too late),
/// which Lambda has given up on or will time out.
async fn post(
    client: &Client,
    path_id: &str,
    id: Option<HeaderValue>,
    answer: Result<Vec<u8>, Diagnostic>,
) {
    let kind = if answer.is_ok() { "response" } else { "error" };
    let body = match answer {
        Ok(body) => Ok(body),
        Err(diagnostic) => serde_json::to_vec(&diagnostic),
    };
    let posted = async {
        let body = Bytes::from(body?);
        let request = || {
            let mut post = build_request()
                .method(Method::POST)
                .uri(format!("/2018-06-01/runtime/invocation/{path_id}/{kind}"));
            if let Some(id) = &id {
                post = post.header(INVOCATION_ID, id);
            }
            if kind == "error" {
                post = post.header("lambda-runtime-function-error-type", "unhandled");
            }
            post.body(Body::from(body.clone()))
        };
        let (parts, reply) = send(client, request).await?.into_parts();
        Ok::<_, Error>((parts.status, read_reply(reply).await?))
    }
    .await;
    match posted {
        Ok((status, _)) if status.is_success() => {}
        Ok((status, reply)) => {
            let reply = String::from_utf8_lossy(&reply);
            let reply: String = reply.chars().take(300).collect();
            log::error!(target: "runtime", "the Runtime API refused the {kind}: {status} {reply}")
        }
        Err(e) => log::error!(target: "runtime", "the {kind} could not be posted: {}", causes(&*e)),
    }
}

/// Sends the request, and once more, on a new connection, when the kept one failed: a server may close it
/// between two requests. A second failure is the answer.
async fn send(
    client: &Client,
    request: impl Fn() -> Result<Request<Body>, http::Error>,
) -> Result<http::Response<Incoming>, Error> {
    match client.call(request()?).await {
        Err(e) => {
            log::warn!(target: "runtime", "the Runtime API connection failed ({}): trying once more", causes(&*e));
            client.call(request()?).await
        }
        ok => ok,
    }
}

/// The reply's body: it has come with its head (no timer on the common path), or it is waited for `REPLY_WAIT`.
async fn read_reply(reply: Incoming) -> Result<Bytes, Error> {
    let mut whole = std::pin::pin!(reply.collect());
    let first = std::future::poll_fn(|cx| Poll::Ready(whole.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(collected) => collected?,
        Poll::Pending => tokio::time::timeout(REPLY_WAIT, whole)
            .await
            .map_err(|_| "its reply did not end")??,
    };
    Ok(collected.to_bytes())
}

/// The request id as one segment of the answer's path: an id is the server's to choose, and `/`, `?` or `#` in it
/// would post somewhere else.
fn path_segment(id: &[u8]) -> String {
    let mut segment = String::with_capacity(id.len());
    for &byte in id {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            segment.push(char::from(byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    segment
}

/// An error and its causes, for a log line ("client error (SendRequest)" alone says little).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(&format!(": {current}"));
        cause = current.source();
    }
    text
}

fn diagnostic(error_type: &str, error: impl std::fmt::Display) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: error.to_string(),
    }
}

/// Lambda sends `host:port`; runners also send a URL with a scheme and a base path (cargo-lambda's
/// `http://127.0.0.1:9000/.rt`, for one). The client needs a host: it would panic without one.
fn endpoint(api: &str) -> Result<http::Uri, String> {
    api.parse::<http::Uri>()
        .ok()
        .filter(|uri| uri.authority().is_some())
        .ok_or_else(|| format!("AWS_LAMBDA_RUNTIME_API={api:?} names no host and port"))
}

#[cfg(test)]
mod tests {
    use super::{endpoint, path_segment};

    #[test]
    fn a_request_id_stays_one_segment_of_the_path() {
        let uuid = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
        assert_eq!(path_segment(uuid.as_bytes()), uuid);
        assert_eq!(path_segment(b"a/../b?x#y z"), "a%2F%2E%2E%2Fb%3Fx%23y%20z");
        assert_eq!(path_segment("caf\u{e9}".as_bytes()), "caf%C3%A9");
        assert_eq!(path_segment(b"\xff"), "%FF");
    }

    #[test]
    fn the_runtime_api_as_lambda_and_runners_name_it() {
        for api in [
            "127.0.0.1:9001",
            "http://127.0.0.1:9000/.rt",
            "localhost:9001",
        ] {
            assert!(endpoint(api).is_ok(), "{api}");
        }
        for api in ["", "/2018-06-01", "not a uri"] {
            assert!(endpoint(api).is_err(), "{api:?}");
        }
    }
}
