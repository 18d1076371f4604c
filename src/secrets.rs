//! Secrets read at run time (D9) through the AWS Parameters and Secrets Lambda Extension: its documented local
//! endpoint `GET http://localhost:2773/secretsmanager/get?secretId=...`, authenticated with the header
//! `X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN`. No SDK: one HTTP/1.1 request to localhost, over the
//! standard library's `TcpStream`, from the blocking threads where the database client already lives.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::state::StateKey;

/// The extension answers from its cache in microseconds; a miss costs it one Secrets Manager call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the extension listens, and the token it wants.
#[derive(Clone)]
pub struct SecretsExtension {
    port: u16,
    token: Option<String>,
}

impl std::fmt::Debug for SecretsExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsExtension")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SecretsExtension {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let port = match var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") {
            Some(p) => p.parse().map_err(|_| {
                format!("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT is not a port: {p:?}")
            })?,
            None => 2773,
        };
        Ok(SecretsExtension {
            port,
            token: var("AWS_SESSION_TOKEN"),
        })
    }

    /// The `SecretString` of `secret_id`. The error says what to check and never holds secret text.
    pub fn secret_string(&self, secret_id: &str) -> Result<String, String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("secretId", secret_id)
            .finish();
        let (status, body) = self
            .get(&format!("/secretsmanager/get?{query}"))
            .map_err(|e| {
                format!(
                    "the Parameters and Secrets extension is not reachable on localhost:{} ({e}): add its layer to the \
                     function, or check PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
                    self.port
                )
            })?;
        if status != 200 {
            // The extension's error bodies carry AWS's error type and message, never a secret value.
            let reason: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            let check = match status {
                401 | 403 => "the extension refused the request token (AWS_SESSION_TOKEN)",
                400 | 404 => {
                    "the secret id and the role's secretsmanager:GetSecretValue permission"
                }
                _ => "the extension's own log lines",
            };
            return Err(format!(
                "reading secret {secret_id:?} failed with HTTP {status}: check {check}; {reason}"
            ));
        }
        let response: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the extension's answer for secret {secret_id:?} is not JSON"))?;
        match response.get("SecretString").and_then(Value::as_str) {
            Some(text) if !text.is_empty() => Ok(text.to_owned()),
            _ => Err(format!(
                "secret {secret_id:?} has no SecretString (a binary secret is not supported)"
            )),
        }
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(token) = &self.token {
            request.push_str(&format!("X-Aws-Parameters-Secrets-Token: {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        parse_response(&response).ok_or_else(|| std::io::Error::other("malformed HTTP response"))
    }
}

/// Status and body of an HTTP/1.1 response read to the end (`Connection: close`), chunked or not.
fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let body = &response[split + 4..];
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let (mut decoded, mut rest) = (Vec::new(), body);
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((status, decoded));
        }
        decoded.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Database credentials from a secret: the JSON that RDS and Secrets Manager rotation keep (`username`,
/// `password`, and `host`, `port`, `dbname` where present), or a plain string that is the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSecret {
    pub username: Option<String>,
    pub password: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSecret")
            .field("username", &self.username)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

impl DatabaseSecret {
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, String> {
        if !text.trim_start().starts_with('{') {
            return Ok(DatabaseSecret {
                username: None,
                password: text.to_owned(),
                host: None,
                port: None,
                dbname: None,
            });
        }
        let malformed = || {
            format!(
                "secret {secret_id:?} starts like JSON but is not a JSON object with a password"
            )
        };
        let json: Value = serde_json::from_str(text).map_err(|_| malformed())?;
        let field = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let port = match json.get("port") {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(DatabaseSecret {
            username: field("username"),
            password: field("password").ok_or_else(malformed)?,
            host: field("host"),
            port,
            dbname: field("dbname"),
        })
    }
}

/// D4's key, given as a value (`EXPECTED_STATE_SECRET`) or read at run time (`EXPECTED_STATE_SECRET_ID`, D9).
pub enum StateKeySource {
    Value(StateKey),
    /// Read on the first request (the extension may not be up during init), then kept for the process. Never
    /// read again because a signature failed: that would let forged states drive calls to Secrets Manager.
    Secret {
        id: String,
        extension: SecretsExtension,
        key: OnceLock<StateKey>,
    },
}

impl StateKeySource {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        match (
            var("EXPECTED_STATE_SECRET"),
            var("EXPECTED_STATE_SECRET_ID"),
        ) {
            (Some(_), Some(_)) => Err(
                "both EXPECTED_STATE_SECRET and EXPECTED_STATE_SECRET_ID are set: keep one".into(),
            ),
            (Some(secret), None) => StateKey::new(&secret)
                .map(StateKeySource::Value)
                .ok_or_else(|| "EXPECTED_STATE_SECRET is empty: refusing every request".into()),
            (None, Some(id)) => Ok(StateKeySource::Secret {
                id,
                extension: SecretsExtension::from_lookup(&var)?,
                key: OnceLock::new(),
            }),
            (None, None) => Err("EXPECTED_STATE_SECRET is not set: refusing every request".into()),
        }
    }

    /// The key; blocks on the first read of a secret, so call it from a blocking thread.
    pub fn key(&self) -> Result<&StateKey, String> {
        match self {
            StateKeySource::Value(key) => Ok(key),
            StateKeySource::Secret { id, extension, key } => {
                if let Some(key) = key.get() {
                    return Ok(key);
                }
                let text = extension.secret_string(id)?;
                let read = StateKey::new(&text)
                    .ok_or_else(|| format!("secret {id:?} (EXPECTED_STATE_SECRET_ID) is empty"))?;
                Ok(key.get_or_init(|| read))
            }
        }
    }

    /// Whether `key` can answer without blocking.
    pub fn is_ready(&self) -> bool {
        match self {
            StateKeySource::Value(_) => true,
            StateKeySource::Secret { key, .. } => key.get().is_some(),
        }
    }
}

#[cfg(test)]
mod tests;
