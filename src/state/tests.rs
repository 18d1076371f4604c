use super::*;
use crate::config::ConfigError;

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
fn age_edges() {
    let now = 1_767_225_600;
    let at = |t: u64| format!("demomall:n0nce:{t}");
    assert_eq!(check_age(&at(now - 600), 600, now), Ok(()), "just inside");
    assert_eq!(
        check_age(&at(now - 601), 600, now),
        Err(AgeError::Expired),
        "just outside"
    );
    assert_eq!(
        check_age(&at(now + CLOCK_SKEW_SECONDS), 600, now),
        Ok(()),
        "within the skew"
    );
    assert_eq!(
        check_age(&at(now + CLOCK_SKEW_SECONDS + 1), 600, now),
        Err(AgeError::FromTheFuture)
    );
    assert_eq!(
        check_age("demomall:n0nce:99999999999999999999999", 600, now),
        Err(AgeError::FromTheFuture),
        "too many digits for a number is still a time, and far ahead"
    );
    for payload in [
        "demomall:n0nce",
        "Demo:n:1",
        "demomall::1",
        "demomall:n:x",
        "demomall:n:1:2",
        "a:b:-1",
        "x",
    ] {
        assert_eq!(
            check_age(payload, 600, now),
            Err(AgeError::NotConvention),
            "{payload}"
        );
    }
    assert_eq!(convention_parts("shop1:abc:42"), Some(("shop1", "abc", 42)));
}

#[test]
fn empty_secret_is_no_key() {
    assert!(StateKey::new("").is_none());
    assert!(StateKey::new(" \t ").is_none(), "a blank key is no key");
    assert_eq!(format!("{:?}", key("hunter2")), "StateKey(<redacted>)");
}

fn age_from(value: Option<&str>) -> Result<StateAge, ConfigError> {
    let value = value.map(str::to_owned);
    StateAge::from_lookup(&move |name: &str| {
        (name == "STATE_MAX_AGE_SECONDS")
            .then(|| value.clone())
            .flatten()
    })
}

#[test]
fn state_age_policies() {
    let now = 1_767_225_600;
    let at = |t: u64| format!("demomall:n0nce:{t}");
    assert_eq!(age_from(None), Ok(StateAge::Default));
    assert_eq!(age_from(Some("off")), Ok(StateAge::Off));
    assert_eq!(age_from(Some("120")), Ok(StateAge::Required(120)));
    for bad in ["0", "3601", "ten", "-5", "18446744073709551616"] {
        assert_eq!(
            age_from(Some(bad)).unwrap_err().variable,
            "STATE_MAX_AGE_SECONDS",
            "{bad}"
        );
    }
    let max = DEFAULT_MAX_AGE_SECONDS;
    assert_eq!(StateAge::Default.check(&at(now - max), now), Ok(()));
    assert_eq!(
        StateAge::Default.check(&at(now - max - 1), now),
        Err(AgeError::Expired)
    );
    assert_eq!(
        StateAge::Default.check("free-form:payload", now),
        Ok(()),
        "no time to check"
    );
    assert_eq!(
        StateAge::Required(120).check(&at(now - 121), now),
        Err(AgeError::Expired)
    );
    assert_eq!(
        StateAge::Required(120).check("free-form", now),
        Err(AgeError::NotConvention)
    );
    assert_eq!(StateAge::Off.check(&at(0), now), Ok(()));
}
