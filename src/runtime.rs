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
//! connection then stays open for the next invocation instead of a new one per request.

use std::future::Future;

use http::{HeaderValue, Method};
use http_body_util::BodyExt;
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
        let Some(invocation) = next::<T>(&client).await? else {
            continue;
        };
        let request_id = invocation.context.request_id.clone();
        let answer = match invocation.payload {
            Ok(payload) => {
                let response = handler(LambdaEvent::new(payload, invocation.context)).await;
                serde_json::to_vec(&response)
                    .map_err(|e| diagnostic("Runtime.SerializationError", e))
            }
            Err(e) => Err(diagnostic("Runtime.UnmarshalError", e)),
        };
        post(&client, &request_id, invocation.id, answer).await;
    }
}

/// One invocation as the Runtime API handed it out.
struct Invocation<T> {
    context: Context,
    /// The event, or why it is not one.
    payload: Result<T, serde_json::Error>,
    /// Lambda Managed Instances' id for the invocation, to be sent back with the answer.
    id: Option<HeaderValue>,
}

/// The next invocation; `None` for one without a request id, which cannot be answered.
async fn next<T: DeserializeOwned>(client: &Client) -> Result<Option<Invocation<T>>, Error> {
    let next = build_request()
        .method(Method::GET)
        .uri(NEXT)
        .body(Body::empty())?;
    let (parts, event) = client.call(next).await?.into_parts();
    let event = event.collect().await?.to_bytes();
    if !parts.status.is_success() {
        return Err(format!("{NEXT} answered {}", parts.status).into());
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(request_id) = header(REQUEST_ID).filter(|id| !id.is_empty()) else {
        log::error!(target: "runtime", "an invocation without {REQUEST_ID}: skipped");
        return Ok(None);
    };
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.deadline = header(DEADLINE_MS)
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    context.invoked_function_arn = header(FUNCTION_ARN).unwrap_or_default().to_owned();
    Ok(Some(Invocation {
        context,
        payload: serde_json::from_slice(&event),
        id: parts.headers.get(INVOCATION_ID).cloned(),
    }))
}

/// Posts the answer, or the error that stands for it, and reads the Runtime API's reply to its end (so the
/// connection carries the next request). A failure here ends this invocation only: an id that cannot be put in a
/// path, an answer refused (too large, too late), which Lambda has given up on or will time out.
async fn post(
    client: &Client,
    request_id: &str,
    id: Option<HeaderValue>,
    answer: Result<Vec<u8>, Diagnostic>,
) {
    let kind = if answer.is_ok() { "response" } else { "error" };
    let posted = async {
        let mut post = build_request().method(Method::POST).uri(format!(
            "/2018-06-01/runtime/invocation/{request_id}/{kind}"
        ));
        if let Some(id) = id {
            post = post.header(INVOCATION_ID, id);
        }
        let body = match answer {
            Ok(body) => body,
            Err(diagnostic) => {
                post = post.header("lambda-runtime-function-error-type", "unhandled");
                serde_json::to_vec(&diagnostic)?
            }
        };
        let (parts, reply) = client
            .call(post.body(Body::from(body))?)
            .await?
            .into_parts();
        reply.collect().await?;
        Ok::<_, Error>(parts.status)
    }
    .await;
    match posted {
        Ok(status) if status.is_success() => {}
        Ok(status) => {
            log::error!(target: "runtime", "the Runtime API refused the {kind}: {status}")
        }
        Err(e) => log::error!(target: "runtime", "the {kind} could not be posted: {e}"),
    }
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
    use super::endpoint;

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
