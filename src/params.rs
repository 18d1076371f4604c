//! What Cafe24's redirect carries (only `code` and `state`, or `error` when the merchant declined) and the
//! rules a value must meet before anything else looks at it (a 400 names the parameter).

use crate::event::HttpRequest;
use crate::state;

/// RFC 6749 A.11: `code = 1*VSCHAR`. Cafe24's codes are a few dozen characters; 512 leaves room, not abuse.
pub const MAX_CODE_LEN: usize = 512;

#[derive(Debug, PartialEq, Eq)]
pub enum Callback<'a> {
    Authorization {
        code: &'a str,
        state: &'a str,
    },
    /// The provider sent `error` instead of a code. Its value is not trusted: only a tidy one is kept.
    Declined {
        error: Option<&'a str>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// Absent or empty; one or both names.
    Missing(Vec<&'static str>),
    Repeated(&'static str),
    Oversized(&'static str, usize),
    Malformed(&'static str, &'static str),
}

impl ParamError {
    pub fn message(&self) -> String {
        match self {
            ParamError::Missing(names) => format!("Missing params: {}", names.join(", ")),
            ParamError::Repeated(name) => format!("Repeated param: {name} must be given once"),
            ParamError::Oversized(name, max) => {
                format!("Oversized param: {name} is longer than {max} characters")
            }
            ParamError::Malformed(name, allowed) => {
                format!("Malformed param: {name} may only hold {allowed}")
            }
        }
    }
}

impl<'a> Callback<'a> {
    pub fn from_request(request: &'a HttpRequest) -> Result<Self, ParamError> {
        // A provider error is handled before anything else. An empty value counts as missing, as for the others.
        if let Some(error) = request.values("error").find(|e| !e.is_empty()) {
            return Ok(Callback::Declined {
                error: tidy_error(error),
            });
        }
        let code = single(request, "code");
        // An `error_description` alone, instead of a code, is a decline too; its text is never repeated back.
        let described = request.values("error_description").any(|d| !d.is_empty());
        if described && matches!(code, Err(None)) {
            return Ok(Callback::Declined { error: None });
        }
        let state = single(request, "state");
        let missing: Vec<&'static str> = [("code", &code), ("state", &state)]
            .into_iter()
            .filter(|(_, v)| matches!(v, Err(None)))
            .map(|(name, _)| name)
            .collect();
        if !missing.is_empty() {
            return Err(ParamError::Missing(missing));
        }
        let code = code.map_err(|e| e.unwrap_or(ParamError::Missing(vec!["code"])))?;
        let state = state.map_err(|e| e.unwrap_or(ParamError::Missing(vec!["state"])))?;
        if code.len() > MAX_CODE_LEN {
            return Err(ParamError::Oversized("code", MAX_CODE_LEN));
        }
        if !code.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ParamError::Malformed("code", "printable ASCII characters"));
        }
        if state.len() > state::MAX_STATE_LEN {
            return Err(ParamError::Oversized("state", state::MAX_STATE_LEN));
        }
        if !state.chars().all(state::is_state_char) {
            return Err(ParamError::Malformed("state", "A-Z a-z 0-9 - _ . ~ :"));
        }
        Ok(Callback::Authorization { code, state })
    }
}

/// The one value of `name`: `Err(None)` when absent or empty, `Err(Some(_))` when repeated.
fn single<'a>(request: &'a HttpRequest, name: &'static str) -> Result<&'a str, Option<ParamError>> {
    let mut values = request.values(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(Some(ParamError::Repeated(name)));
    }
    first.filter(|v| !v.is_empty()).ok_or(None)
}

/// OAuth error codes are short ASCII words (`access_denied`); anything else is not repeated back to the client.
fn tidy_error(error: &str) -> Option<&str> {
    let tidy = !error.is_empty()
        && error.len() <= 64
        && error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    tidy.then_some(error)
}

#[cfg(test)]
mod tests;
