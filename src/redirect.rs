//! The optional finish for a browser: the merchant who just clicked "allow" in Cafe24 lands on a page of yours
//! (`SUCCESS_REDIRECT_URL`, `FAILURE_REDIRECT_URL`) instead of a raw JSON body. The function does exactly what it
//! does without them; only the answer becomes a 302.

use crate::config::{ConfigError, Lookup};

/// The redirect targets, validated when the instance starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirects {
    pub success: Option<String>,
    pub failure: Option<String>,
}

impl Redirects {
    pub fn from_lookup(var: &impl Lookup) -> Result<Self, ConfigError> {
        let read = |name: &'static str| {
            var(name)
                .map(|url| validate(&url).map_err(|problem| ConfigError::new(name, problem)))
                .transpose()
        };
        Ok(Redirects {
            success: read("SUCCESS_REDIRECT_URL")?,
            failure: read("FAILURE_REDIRECT_URL")?,
        })
    }

    /// Where a failed request goes, with a short reason code; never the authorization code.
    pub fn failure_location(&self, reason: &str) -> Option<String> {
        let url = self.failure.as_deref()?;
        let (base, fragment) = match url.split_once('#') {
            Some((base, fragment)) => (base, Some(fragment)),
            None => (url, None),
        };
        let separator = if base.contains('?') { '&' } else { '?' };
        let mut location = format!("{base}{separator}reason={reason}");
        if let Some(fragment) = fragment {
            location.push('#');
            location.push_str(fragment);
        }
        Some(location)
    }
}

/// https only (the page follows a live OAuth flow), a host, and nothing that could break a `Location` header.
fn validate(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("must be an https:// URL, got {url:?}"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(format!("has no plain host: {url:?}"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "may only hold visible ASCII (percent-encode the rest): {url:?}"
        ));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests;
