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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> StateKey {
        StateKey::new(secret).unwrap()
    }

    // The README's test vectors; any HMAC-SHA256 + base64url implementation reproduces them, e.g.
    // python3 -c 'import hmac,hashlib,base64;print(base64.urlsafe_b64encode(hmac.new(b"local-dev-secret",
    //   b"demo-mall:n0nce:1767225600",hashlib.sha256).digest()).rstrip(b"="))'
    const VECTORS: [(&str, &str, &str); 3] = [
        (
            "local-dev-secret",
            "demo-mall:n0nce:1767225600",
            "demo-mall:n0nce:1767225600.QDSRfvDLa6c6tnc78IPPept6hLqjdighdsMPON9sPkQ",
        ),
        (
            "correct horse battery staple",
            "a",
            "a.mXPO88GEXavoHA70kvNoAchgBJSXQnFHZ1gAmYOyfOo",
        ),
        (
            "비밀",
            "shop.v1:~x_y-z",
            "shop.v1:~x_y-z.wspy6aoZbAArkIJ7laSbPJ7_Im8MEU1k9fnGHgGgrJQ",
        ),
    ];

    #[test]
    fn test_vectors_sign_and_verify() {
        for (secret, payload, state) in VECTORS {
            assert_eq!(
                key(secret).sign(payload).as_deref(),
                Some(state),
                "{secret} {payload}"
            );
            assert_eq!(key(secret).verify(state), Some(SignedState { payload }));
        }
    }

    #[test]
    fn splits_at_the_last_dot() {
        let k = key("s");
        let state = k.sign("a.b.c").unwrap();
        assert_eq!(k.verify(&state).unwrap().payload, "a.b.c");
    }

    #[test]
    fn rejects_wrong_key_tampering_and_malformed_states() {
        let k = key("local-dev-secret");
        let good = VECTORS[0].2;
        assert!(key("other").verify(good).is_none());
        let (payload, sig) = good.rsplit_once('.').unwrap();
        assert!(
            k.verify(&format!("{payload}x.{sig}")).is_none(),
            "payload changed"
        );
        let mut flipped = sig.to_string();
        flipped.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
        assert!(
            k.verify(&format!("{payload}.{flipped}")).is_none(),
            "signature changed"
        );
        for bad in [
            "",
            "no-dot",
            ".",
            &format!(".{sig}"),
            &format!("{payload}."),
            &format!("{payload}.{sig}="),
            &format!("{payload}.{}", &sig[..42]),
            &format!("{payload} .{sig}"),
            &format!("{}.{sig}", "a".repeat(513)),
        ] {
            assert!(k.verify(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sign_refuses_payloads_outside_the_alphabet() {
        let k = key("s");
        for bad in ["", "a b", "a/b", "몰", &"a".repeat(513)] {
            assert!(k.sign(bad).is_none(), "{bad:?}");
        }
        assert!(k.sign(&"a".repeat(512)).is_some());
    }

    #[test]
    fn empty_secret_is_no_key() {
        assert!(StateKey::new("").is_none());
        assert_eq!(format!("{:?}", key("hunter2")), "StateKey(<redacted>)");
    }
}
