//! The signed `state`: `payload "." base64url_nopad(HMAC-SHA256(secret, payload))`.
//!
//! The function is the only public endpoint of the system; the signature is how it tells a flow the app
//! really started from anything the internet sends it. Verification is stateless and constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::{ConfigError, Lookup};
use crate::secret::Secret;

/// The payload is 1 to 512 characters.
pub const MAX_PAYLOAD_LEN: usize = 512;
/// A SHA-256 MAC is 32 bytes: 43 characters of unpadded base64url.
const SIGNATURE_LEN: usize = 43;
/// The longest state that can verify: payload, the dot, the signature.
pub const MAX_STATE_LEN: usize = MAX_PAYLOAD_LEN + 1 + SIGNATURE_LEN;

/// The payload alphabet: `A-Z a-z 0-9 - _ . ~ :`. The signature's base64url alphabet is a subset of it.
pub fn is_state_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | ':')
}

/// The key that signs and verifies states. Never empty: an empty secret fails closed at configuration time.
/// Kept keyed: HMAC hashes the key into its inner and outer states once, here, not on every request.
#[derive(Debug, Clone)]
pub struct StateKey(Secret<Hmac<Sha256>>);

impl StateKey {
    /// `None` for an empty or blank secret (a template's placeholder, not a key): the function then refuses every
    /// request (it fails closed, never open).
    pub fn new(secret: &str) -> Option<Self> {
        if secret.trim().is_empty() {
            return None;
        }
        // HMAC takes keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .ok()
            .map(|mac| StateKey(Secret::new(mac)))
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.0.expose().clone()
    }

    /// The state for `payload`, or `None` when the payload is outside the alphabet or length.
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

/// A state whose signature verified: only its payload is worth keeping (the signature stays out of logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedState<'a> {
    pub payload: &'a str,
}

/// How far in the future an `issued_at` may be: the clocks of the app that mints states and of Lambda differ a little.
pub const CLOCK_SKEW_SECONDS: u64 = 30;
/// The usual life of an OAuth CSRF state. A stored row outlives it (the purge keeps rows for a day at least), so a
/// replayed old callback URL is refused rather than stored again after its row was purged.
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 600;
/// The longest `STATE_MAX_AGE_SECONDS`: under the purge's shortest retention (one day), with room to spare.
pub const MAX_MAX_AGE_SECONDS: u64 = 3600;

/// How old a verified state may be, from `STATE_MAX_AGE_SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAge {
    /// Unset: a state whose payload follows `mall_id:nonce:issued_at` may be `DEFAULT_MAX_AGE_SECONDS` old; a
    /// payload of another form carries no time, and is accepted on its signature alone.
    Default,
    /// Set: every state must follow the convention and be at most this many seconds old.
    Required(u64),
    /// `off`: only the signature is checked.
    Off,
}

impl StateAge {
    pub fn from_lookup(var: &impl Lookup) -> Result<Self, ConfigError> {
        const NAME: &str = "STATE_MAX_AGE_SECONDS";
        match var(NAME).as_deref().map(str::trim) {
            None => Ok(StateAge::Default),
            Some("off") => Ok(StateAge::Off),
            Some(value) => match value.parse::<u64>() {
                Ok(seconds @ 1..=MAX_MAX_AGE_SECONDS) => Ok(StateAge::Required(seconds)),
                _ => Err(ConfigError::new(
                    NAME,
                    format!(
                        "must be off or a number of seconds from 1 to {MAX_MAX_AGE_SECONDS}, got {value:?}"
                    ),
                )),
            },
        }
    }

    /// Whether a state with this payload is still usable at `now` (Unix seconds).
    pub fn check(self, payload: &str, now: u64) -> Result<(), AgeError> {
        match self {
            StateAge::Off => Ok(()),
            StateAge::Required(max_age) => check_age(payload, max_age, now),
            StateAge::Default if convention_parts(payload).is_none() => Ok(()),
            StateAge::Default => check_age(payload, DEFAULT_MAX_AGE_SECONDS, now),
        }
    }
}

/// Why a verified state may not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeError {
    /// The payload is not `mall_id:nonce:issued_at`.
    NotConvention,
    Expired,
    FromTheFuture,
}

/// The payload convention `mall_id:nonce:issued_at`, split; `None` when the payload does not follow it. Cafe24's
/// redirect carries no mall id, so the token service reads it from here.
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
    // Digits past u64 are a time past any clock: the age check refuses it as issued in the future.
    Some((mall_id, nonce, issued_at.parse().unwrap_or(u64::MAX)))
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
