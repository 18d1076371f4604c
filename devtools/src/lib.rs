//! Tooling shared by the tests, `replay` and the benchmark: a throwaway PostgreSQL 17 cluster, a Lambda Runtime
//! API server, and the fixtures in `events/` with what each one must get back.

pub mod botocore;
pub mod certs;
pub mod instance;
pub mod pgbouncer;
pub mod postgres;
pub mod runtime_api;
pub mod secrets_extension;

use std::path::PathBuf;

use serde_json::Value;

/// The secret the fixtures' states are signed with (README, "Local secret").
pub const LOCAL_STATE_SECRET: &str = "local-dev-secret";

/// The benchmark's floor statement (`bench`, `bare_insert`): the bare parameterised insert into the function's own
/// table, its indexes and its notify trigger included, so the floor pays for the table as the function does.
pub const BARE_INSERT: &str =
    "insert into cafe24.oauth_authorization_codes (code, state) values ($1, $2) returning id";

/// The three event shapes, each a folder of `events/`.
pub const SHAPES: [&str; 3] = ["rest-api", "http-api", "function-url"];

/// Each fixture's name and the status it must get, in the order to replay them: `repeat` and `conflict` come
/// after the `success` they repeat.
pub const FIXTURES: [(&str, u16); 9] = [
    ("success", 200),
    ("repeat", 200),
    ("conflict", 409),
    ("missing-code", 400),
    ("missing-state", 400),
    ("repeated-code", 400),
    ("declined", 400),
    ("forged-state", 403),
    ("post", 405),
];

pub fn events_dir() -> PathBuf {
    postgres::workspace_root().join("events")
}

/// `events/<shape>/<name>.json`, parsed.
pub fn fixture(shape: &str, name: &str) -> Result<Value, String> {
    let path = events_dir().join(shape).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A state signed as the function signs them, for tests that need many (the README's test vectors check the function's own signer).
pub fn sign_state(secret: &str, payload: &str) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(payload.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// An HTTP API (2.0) callback event for `code` and `state`, from the real sample in `events/`.
pub fn callback_event(code: &str, state: &str) -> Result<Value, String> {
    let mut event = fixture("http-api", "success")?;
    event["rawQueryString"] = format!("code={code}&state={state}").into();
    Ok(event)
}
