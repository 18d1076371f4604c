//! A stand-in for the AWS Parameters and Secrets Lambda Extension, speaking its documented HTTP API:
//! `GET /secretsmanager/get?secretId=<id>` with the header `X-Aws-Parameters-Secrets-Token`, answering with the
//! GetSecretValue JSON. Secrets can be changed while it runs (rotation); it counts the reads.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    secrets: HashMap<String, String>,
    reads: HashMap<String, usize>,
    refused: usize,
}

pub struct FakeSecretsExtension {
    port: u16,
    token: String,
    state: Arc<Mutex<State>>,
}

impl FakeSecretsExtension {
    /// Listens on a free loopback port; only requests carrying `token` are served.
    pub fn start(token: &str) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let (serve_state, expected) = (Arc::clone(&state), token.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (state, expected) = (Arc::clone(&serve_state), expected.clone());
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    let mut token = None;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name
                                .trim()
                                .eq_ignore_ascii_case("x-aws-parameters-secrets-token")
                        {
                            token = Some(value.trim().to_owned());
                        }
                    }
                    let (status, body) = answer(&state, &request_line, token.as_deref(), &expected);
                    let _ = write!(
                        writer,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Ok(FakeSecretsExtension {
            port,
            token: token.to_owned(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The variables that point the function at this extension.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT".into(),
                self.port.to_string(),
            ),
            ("AWS_SESSION_TOKEN".into(), self.token.clone()),
        ]
    }

    pub fn set_secret(&self, id: &str, value: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.secrets.insert(id.to_owned(), value.to_owned());
        }
    }

    pub fn reads(&self, id: &str) -> usize {
        self.state
            .lock()
            .map(|s| s.reads.get(id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn refused(&self) -> usize {
        self.state.lock().map(|s| s.refused).unwrap_or(0)
    }
}

fn answer(
    state: &Mutex<State>,
    request_line: &str,
    token: Option<&str>,
    expected: &str,
) -> (&'static str, String) {
    let Ok(mut state) = state.lock() else {
        return ("500 Internal Server Error", "{}".into());
    };
    if token != Some(expected) {
        state.refused += 1;
        return (
            "401 Unauthorized",
            r#"{"message":"missing or invalid X-Aws-Parameters-Secrets-Token"}"#.into(),
        );
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or_default();
    let Some(query) = target.strip_prefix("/secretsmanager/get?") else {
        return ("404 Not Found", "{}".into());
    };
    let id = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "secretId")
        .map(|(_, value)| percent_decode(value))
        .unwrap_or_default();
    *state.reads.entry(id.clone()).or_default() += 1;
    match state.secrets.get(&id) {
        Some(value) => (
            "200 OK",
            serde_json::json!({
                "ARN": format!("arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:{id}-AbCdEf"),
                "Name": id,
                "SecretString": value,
                "VersionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": "2026-11-25T09:00:00Z",
                "ResultMetadata": {},
            })
            .to_string(),
        ),
        None => (
            "400 Bad Request",
            r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#
                .into(),
        ),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
