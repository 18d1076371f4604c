//! The signed `state` of D4: `payload "." base64url_nopad(HMAC-SHA256(secret, payload))`.
//!
//! The function is the only public endpoint of the system; the signature is how it tells a flow the app
//! really started from anything the internet sends it. Verification is stateless and constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// D4: the payload is 1 to 512 characters.
pub const MAX_PAYLOAD_LEN: usize = 512;
/// A SHA-256 MAC is 32 bytes: 43 characters of unpadded base64url.
const SIGNATURE_LEN: usize = 43;
/// The longest state that can verify: payload, the dot, the signature.
pub const MAX_STATE_LEN: usize = MAX_PAYLOAD_LEN + 1 + SIGNATURE_LEN;

/// D4's payload alphabet: `A-Z a-z 0-9 - _ . ~ :`. The signature's base64url alphabet is a subset of it.
pub fn is_state_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | ':')
}

/// The key that signs and verifies states. Never empty: an empty secret fails closed at configuration time.
#[derive(Clone)]
pub struct StateKey(Vec<u8>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

impl StateKey {
    /// `None` for an empty secret: D4 wants the function to refuse every request then, never to accept.
    pub fn new(secret: &str) -> Option<Self> {
        (!secret.is_empty()).then(|| StateKey(secret.as_bytes().to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps the path panic-free.
        Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()))
    }

    /// The state for `payload`, or `None` when the payload is outside D4's alphabet or length.
    pub fn sign(&self, payload: &str) -> Option<String> {
        if !is_valid_payload(payload) {
            return None;
        }
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Some(format!("{payload}.{signature}"))
    }

    /// The verified payload of `state`; `None` for a missing, malformed or wrong signature.
    pub fn verify<'a>(&self, state: &'a str) -> Option<SignedState<'a>> {
        let (payload, signature) = state.rsplit_once('.')?;
        if !is_valid_payload(payload) || signature.len() != SIGNATURE_LEN {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature).ok()?;
        Some(SignedState { payload })
    }
}

fn is_valid_payload(payload: &str) -> bool {
    (1..=MAX_PAYLOAD_LEN).contains(&payload.len()) && payload.chars().all(is_state_char)
}

/// A state whose signature verified: only its payload is worth keeping (the signature stays out of logs, D7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedState<'a> {
    pub payload: &'a str,
}

/// How far in the future an `issued_at` may be: the clocks of the app that mints states and of Lambda differ a little.
pub const CLOCK_SKEW_SECONDS: u64 = 30;

/// Why a verified state is too old to use (D8, with `STATE_MAX_AGE_SECONDS` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeError {
    /// The payload is not `mall_id:nonce:issued_at`.
    NotConvention,
    Expired,
    FromTheFuture,
}

/// D8's payload convention `mall_id:nonce:issued_at`, split; `None` when the payload does not follow it.
pub fn convention_parts(payload: &str) -> Option<(&str, &str, u64)> {
    let mut parts = payload.split(':');
    let (mall_id, nonce, issued_at) = (parts.next()?, parts.next()?, parts.next()?);
    let is_mall_id = !mall_id.is_empty()
        && mall_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let is_time = !issued_at.is_empty() && issued_at.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !is_mall_id || nonce.is_empty() || !is_time {
        return None;
    }
    Some((mall_id, nonce, issued_at.parse().ok()?))
}

/// Whether a state issued per the convention is at most `max_age` seconds old at `now` (Unix seconds).
pub fn check_age(payload: &str, max_age: u64, now: u64) -> Result<(), AgeError> {
    let (_, _, issued_at) = convention_parts(payload).ok_or(AgeError::NotConvention)?;
    if issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(AgeError::FromTheFuture);
    }
    if now.saturating_sub(issued_at) > max_age {
        return Err(AgeError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
