//! What an unusable setting is, and the readers every module's configuration shares. The environment is read
//! once, when the instance starts; a bad value makes every request a 500 "server misconfigured" whose log line
//! names the variable, instead of a crash loop that API Gateway would turn into a bare 502.

use std::fmt;
use std::time::Duration;

/// A variable the function cannot work with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

/// How the environment is read: by name, an unset or empty variable being `None` (tests pass their own).
pub trait Lookup: Fn(&str) -> Option<String> {}
impl<F: Fn(&str) -> Option<String>> Lookup for F {}

/// The process environment, as [`Lookup`] sees it.
pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whole seconds in `1..=max`, or `default` when unset. `0` also means the default: libpq reads it as "wait
/// forever", which a request that must end in bounded time cannot do.
pub fn seconds(
    var: &impl Lookup,
    name: &'static str,
    default: Duration,
    max: u64,
) -> Result<Duration, ConfigError> {
    let Some(value) = var(name) else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(0) => Ok(default),
        Ok(s) if s <= max => Ok(Duration::from_secs(s)),
        _ => Err(ConfigError::new(
            name,
            format!("must be a whole number of seconds from 0 to {max}, got {value:?}"),
        )),
    }
}
