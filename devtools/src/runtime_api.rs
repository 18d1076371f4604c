//! A Lambda Runtime API server for tests, replay and benchmarks: it hands events to a `bootstrap` process the
//! way Lambda does (`/2018-06-01/runtime/invocation/next` with the request-id and deadline headers) and collects
//! what it posts back (`/response`, `/error`, `/init/error`). Standard library only, one thread per connection.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function posted for one invocation.
#[derive(Debug, Clone)]
pub enum Reply {
    Response(Value),
    Error(Value),
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub reply: Reply,
    /// From handing the event out on `/next` to the reply's arrival.
    pub elapsed: Duration,
}

impl Invocation {
    /// The proxy response, or a description of why there is none.
    pub fn response(&self) -> Result<&Value, String> {
        match &self.reply {
            Reply::Response(v) => Ok(v),
            Reply::Error(e) => Err(format!("invocation error: {e}")),
        }
    }

    pub fn status(&self) -> Option<u64> {
        self.response().ok()?.get("statusCode")?.as_u64()
    }

    /// The response body, parsed.
    pub fn body(&self) -> Option<Value> {
        serde_json::from_str(self.response().ok()?.get("body")?.as_str()?).ok()
    }
}

#[derive(Default)]
struct State {
    /// Each event with its `Lambda-Runtime-Deadline-Ms` header, when it has one.
    queue: VecDeque<(String, Value, Option<String>)>,
    replies: HashMap<String, Reply>,
    handed_out: HashMap<String, Instant>,
    init_error: Option<Value>,
    first_next: Option<Instant>,
    nexts: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    closed: AtomicBool,
    /// Close each connection a moment after answering a posted reply, as a server that drops idle connections.
    drop_after_reply: AtomicBool,
}

pub struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl RuntimeApi {
    pub fn start() -> Result<RuntimeApi, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let address = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            drop_after_reply: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.closed.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let shared = Arc::clone(&accept_shared);
                    std::thread::spawn(move || serve_connection(stream, &shared));
                }
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            next_id: AtomicU64::new(0),
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Hands `event` to the function with a deadline `timeout` from now, as Lambda does, and waits for its reply.
    pub fn invoke(&self, event: &Value, timeout: Duration) -> Result<Invocation, String> {
        self.invoke_with_deadline(event, epoch_ms() + timeout.as_millis() as u64, timeout)
    }

    /// Hands `event` to the function with `deadline_ms` as the `Lambda-Runtime-Deadline-Ms` header (whatever a
    /// local runner might send), and waits `timeout` for its reply.
    pub fn invoke_with_deadline(
        &self,
        event: &Value,
        deadline_ms: u64,
        timeout: Duration,
    ) -> Result<Invocation, String> {
        self.invoke_with_deadline_header(event, Some(&deadline_ms.to_string()), timeout)
    }

    /// Hands `event` to the function with this `Lambda-Runtime-Deadline-Ms` header as it is, or none, and waits
    /// `timeout` for its reply: what runners that are not Lambda send.
    pub fn invoke_with_deadline_header(
        &self,
        event: &Value,
        deadline: Option<&str>,
        timeout: Duration,
    ) -> Result<Invocation, String> {
        let request_id = format!(
            "{:08x}-test-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let mut state = self.lock();
        state.queue.push_back((
            request_id.clone(),
            event.clone(),
            deadline.map(str::to_owned),
        ));
        self.shared.changed.notify_all();
        let limit = Instant::now() + timeout;
        loop {
            if let Some(reply) = state.replies.remove(&request_id) {
                let elapsed = state
                    .handed_out
                    .remove(&request_id)
                    .map_or(Duration::ZERO, |t| t.elapsed());
                return Ok(Invocation {
                    request_id,
                    reply,
                    elapsed,
                });
            }
            if let Some(error) = &state.init_error {
                return Err(format!("the function reported an init error: {error}"));
            }
            let now = Instant::now();
            if now >= limit {
                state.queue.retain(|(id, _, _)| id != &request_id);
                return Err(format!("no reply within {timeout:?}"));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, limit - now)
                .map_err(|_| "poisoned")?
                .0;
        }
    }

    /// When the function first asked for an event: its init is over.
    pub fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        let limit = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(t) = state.first_next {
                return Some(t);
            }
            let now = Instant::now();
            if now >= limit {
                return None;
            }
            state = self.shared.changed.wait_timeout(state, limit - now).ok()?.0;
        }
    }

    /// From now on, close each connection 2 ms after the `202` to a posted reply, without saying so: the
    /// function's next request on it, already on its way, finds it closed.
    pub fn drop_connections_after_replies(&self) {
        self.shared.drop_after_reply.store(true, Ordering::Relaxed);
    }

    pub fn init_error(&self) -> Option<Value> {
        self.lock().init_error.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect(&self.address);
    }
}

pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request { method, path, body })
}

fn write_response(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> bool {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    // One write: a second one would wait for the client's delayed ACK of the first on a kept connection (Nagle).
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message).is_ok()
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    // As Lambda's own Runtime API (a Go server) does.
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let ok = match (request.method.as_str(), request.path.strip_prefix(PREFIX)) {
            ("GET", Some("/invocation/next")) => match next_event(shared) {
                Some((id, event, deadline)) => {
                    let mut headers = vec![
                        ("content-type", "application/json".into()),
                        ("lambda-runtime-aws-request-id", id),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:ap-northeast-2:123456789012:function:cafe24-oauth-callback".into(),
                        ),
                        ("lambda-runtime-trace-id", "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c;Sampled=0".into()),
                    ];
                    headers.extend(deadline.map(|d| ("lambda-runtime-deadline-ms", d)));
                    write_response(
                        &mut writer,
                        "200 OK",
                        &headers,
                        &serde_json::to_vec(&event).unwrap_or_default(),
                    )
                }
                None => return,
            },
            ("POST", Some("/init/error")) => {
                let error = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                record(shared, |state| state.init_error = Some(error));
                write_response(&mut writer, "202 Accepted", &[], br#"{"status":"OK"}"#)
            }
            ("POST", Some(path)) => {
                let path = path.strip_prefix("/invocation/").unwrap_or_default();
                let (id, kind) = path.rsplit_once('/').unwrap_or_default();
                let value: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let reply = match kind {
                    "response" => Some(Reply::Response(value)),
                    "error" => Some(Reply::Error(value)),
                    _ => None,
                };
                match reply {
                    Some(reply) => {
                        let id = id.to_owned();
                        record(shared, |state| {
                            state.replies.insert(id, reply);
                        });
                        let ok =
                            write_response(&mut writer, "202 Accepted", &[], br#"{"status":"OK"}"#);
                        if shared.drop_after_reply.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(2));
                            return;
                        }
                        ok
                    }
                    None => write_response(&mut writer, "404 Not Found", &[], b"{}"),
                }
            }
            _ => write_response(&mut writer, "404 Not Found", &[], b"{}"),
        };
        if !ok {
            return;
        }
    }
}

fn record(shared: &Shared, change: impl FnOnce(&mut State)) {
    let mut state = shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    change(&mut state);
    shared.changed.notify_all();
}

/// Blocks until an event is queued (Lambda's long poll); `None` once the server is closed.
fn next_event(shared: &Shared) -> Option<(String, Value, Option<String>)> {
    let mut state = shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state.nexts += 1;
    if state.first_next.is_none() {
        state.first_next = Some(Instant::now());
        shared.changed.notify_all();
    }
    loop {
        if shared.closed.load(Ordering::Relaxed) {
            return None;
        }
        if let Some((id, event, deadline)) = state.queue.pop_front() {
            state.handed_out.insert(id.clone(), Instant::now());
            return Some((id, event, deadline));
        }
        state = shared
            .changed
            .wait_timeout(state, Duration::from_millis(200))
            .ok()?
            .0;
    }
}

/// What a process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub threads: usize,
    pub descriptors: usize,
}

/// A `bootstrap` process serving one Runtime API: a warm Lambda instance. Its stdout lines are kept.
pub struct Function {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl Function {
    /// Starts `bootstrap` with Lambda's environment plus `env` (which may override it).
    pub fn start(
        bootstrap: &Path,
        api: &RuntimeApi,
        env: &[(String, String)],
    ) -> Result<Function, String> {
        Self::start_with_runner(&[], bootstrap, api, env)
    }

    /// Like [`Function::start`], through a runner: `runner[0] runner[1..] bootstrap`, for instance
    /// `["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]` to run an arm64 build on an x86_64 machine.
    /// An empty runner starts `bootstrap` itself.
    pub fn start_with_runner(
        runner: &[&str],
        bootstrap: &Path,
        api: &RuntimeApi,
        env: &[(String, String)],
    ) -> Result<Function, String> {
        let mut command = match runner.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bootstrap);
                command
            }
            None => Command::new(bootstrap),
        };
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "cafe24-oauth-callback")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/cafe24-oauth-callback",
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]test")
            .env("AWS_REGION", "ap-northeast-2")
            .env(
                "LAMBDA_TASK_ROOT",
                bootstrap.parent().unwrap_or(Path::new(".")),
            )
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            let program = runner.first().map_or(bootstrap, Path::new);
            format!("cannot start {}: {e}", program.display())
        })?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        Ok(Function {
            child,
            lines,
            started,
        })
    }

    /// Every line the function printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The JSON lines about `request_id`: log lines (`request_id`) and metric lines (`RequestId`).
    pub fn lines_for(&self, request_id: &str) -> Vec<Value> {
        self.output()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| {
                l.get("request_id")
                    .or_else(|| l.get("RequestId"))
                    .and_then(Value::as_str)
                    == Some(request_id)
            })
            .collect()
    }

    /// The request's log line (the one with a level).
    pub fn request_log(&self, request_id: &str) -> Option<Value> {
        self.wait_line(request_id, |l| l.get("level").is_some())
    }

    /// The request's metric line (the EMF document, `_aws`).
    pub fn request_metrics(&self, request_id: &str) -> Option<Value> {
        self.wait_line(request_id, |l| l.get("_aws").is_some())
    }

    /// The first line about `request_id` that `wanted` accepts. The function writes its lines before it answers,
    /// so they are in the pipe by now; this waits (up to 10 s, for a busy machine) only for the reading thread.
    fn wait_line(&self, request_id: &str, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let line = self.lines_for(request_id).into_iter().find(&wanted);
            if line.is_some() || Instant::now() >= until {
                return line;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's threads and open file descriptors, from `/proc`.
    pub fn resources(&self) -> Result<Resources, String> {
        let proc = format!("/proc/{}", self.pid());
        let status =
            std::fs::read_to_string(format!("{proc}/status")).map_err(|e| e.to_string())?;
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or("no Threads: line")?;
        let descriptors = std::fs::read_dir(format!("{proc}/fd"))
            .map_err(|e| e.to_string())?
            .count();
        Ok(Resources {
            threads,
            descriptors,
        })
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
