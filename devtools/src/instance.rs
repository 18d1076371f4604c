//! One warm Lambda instance for tests: the built `bootstrap` behind its own Runtime API test server, and the
//! answer to a callback with the log line the function wrote about it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::runtime_api::{Function, Invocation, RuntimeApi};
use crate::{LOCAL_STATE_SECRET, callback_event, sign_state};

/// What the Runtime API gives each invocation, as a Lambda timeout would.
pub const LAMBDA_TIMEOUT: Duration = Duration::from_secs(25);

pub struct Instance {
    pub api: RuntimeApi,
    pub function: Function,
}

/// A callback's answer and the function's log line about it.
#[derive(Debug)]
pub struct Answer {
    pub status: u64,
    pub body: Value,
    pub log: Value,
    /// From the function taking the event to its response.
    pub elapsed: Duration,
}

impl Instance {
    /// Starts `bootstrap` with `env`; the local state secret is set unless `env` gives the state key itself.
    pub fn start(bootstrap: &str, env: &[(String, String)]) -> Result<Instance, String> {
        let mut env = env.to_vec();
        if !env
            .iter()
            .any(|(k, _)| k.starts_with("EXPECTED_STATE_SECRET"))
        {
            env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
        }
        let api = RuntimeApi::start()?;
        let function = Function::start(Path::new(bootstrap), &api, &env)?;
        Ok(Instance { api, function })
    }

    /// A callback for `code` with a state signed by the local secret.
    pub fn callback(&self, code: &str) -> Result<Answer, String> {
        self.callback_with(
            code,
            &sign_state(LOCAL_STATE_SECRET, &format!("mall:{code}")),
        )
    }

    pub fn callback_with(&self, code: &str, state: &str) -> Result<Answer, String> {
        self.answer(
            self.api
                .invoke(&callback_event(code, state)?, LAMBDA_TIMEOUT)?,
        )
    }

    /// A callback for `code` sent with `deadline_ms` as the runtime's deadline header (what a local runner, or
    /// a short Lambda timeout, might send).
    pub fn callback_by(&self, code: &str, deadline_ms: u64) -> Result<Answer, String> {
        self.callback_with_deadline_header(code, Some(&deadline_ms.to_string()))
    }

    /// A callback for `code` with this deadline header as it is, or none: what runners other than Lambda send.
    pub fn callback_with_deadline_header(
        &self,
        code: &str,
        deadline: Option<&str>,
    ) -> Result<Answer, String> {
        let state = sign_state(LOCAL_STATE_SECRET, &format!("mall:{code}"));
        let event = callback_event(code, &state)?;
        self.answer(
            self.api
                .invoke_with_deadline_header(&event, deadline, LAMBDA_TIMEOUT)?,
        )
    }

    fn answer(&self, invocation: Invocation) -> Result<Answer, String> {
        Ok(Answer {
            status: invocation.status().ok_or("no status")?,
            body: invocation.body().ok_or("no body")?,
            log: self
                .function
                .request_log(&invocation.request_id)
                .unwrap_or_default(),
            elapsed: invocation.elapsed,
        })
    }
}

/// `(name, value)` pairs as owned environment entries.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
