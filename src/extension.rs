//! Secrets read at run time through the AWS Parameters and Secrets Lambda Extension: its documented local endpoint
//! `GET http://localhost:2773/secretsmanager/get?secretId=...`, authenticated with the header
//! `X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN`. No AWS SDK (its size and cold start are what this
//! function is built against): one HTTP/1.1 request to localhost over the standard library's `TcpStream`, on a
//! blocking thread.
//!
//! A read is bounded as a whole, by the deadline the caller gives, however slowly the answer trickles in, and
//! in size: Secrets Manager keeps at most 64 KiB in a secret, so an answer many times that is refused rather
//! than held in a 128 MB function's memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{ConfigError, Lookup};
use crate::secret::Secret;

/// The largest answer read: a 64 KiB secret, JSON-escaped, with the metadata around it.
const MAX_RESPONSE_BYTES: usize = 512 * 1024;
const DEFAULT_PORT: u16 = 2773;

/// Where the extension listens, and the token it wants.
#[derive(Debug, Clone)]
pub struct SecretsExtension {
    port: u16,
    token: Option<Secret<String>>,
}

impl SecretsExtension {
    pub fn from_lookup(var: &impl Lookup) -> Result<Self, ConfigError> {
        const PORT: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";
        let port = match var(PORT) {
            Some(p) => p
                .parse()
                .map_err(|_| ConfigError::new(PORT, format!("is not a port number: {p:?}")))?,
            None => DEFAULT_PORT,
        };
        Ok(SecretsExtension {
            port,
            token: var("AWS_SESSION_TOKEN").map(Secret::new),
        })
    }

    /// The `SecretString` of `secret_id`, read by `deadline`. The error says what to check and never holds
    /// secret text.
    pub fn secret_string(
        &self,
        secret_id: &str,
        deadline: Instant,
    ) -> Result<Secret<String>, String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("secretId", secret_id)
            .finish();
        let (status, body) = self
            .get(&format!("/secretsmanager/get?{query}"), deadline)
            .map_err(|e| {
                format!(
                    "the Parameters and Secrets extension did not answer on localhost:{} ({e}): add its layer to \
                     the function, or check PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
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
            Some(text) if !text.is_empty() => Ok(Secret::new(text.to_owned())),
            _ => Err(format!(
                "secret {secret_id:?} has no SecretString (a binary secret is not supported)"
            )),
        }
    }

    fn get(&self, path: &str, deadline: Instant) -> std::io::Result<(u16, Vec<u8>)> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&address, remaining(deadline)?)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(token) = &self.token {
            request.push_str("X-Aws-Parameters-Secrets-Token: ");
            request.push_str(token.expose());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            // A timeout per read would let an answer that trickles in a byte at a time run on forever.
            stream.set_read_timeout(Some(remaining(deadline)?))?;
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                break;
            }
            if response.len() + read > MAX_RESPONSE_BYTES {
                return Err(std::io::Error::other(format!(
                    "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            response.extend_from_slice(&chunk[..read]);
        }
        parse_response(&response).ok_or_else(|| std::io::Error::other("malformed HTTP response"))
    }
}

/// What is left until `deadline`; none left is a timeout.
fn remaining(deadline: Instant) -> std::io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))
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

#[cfg(test)]
mod tests;
