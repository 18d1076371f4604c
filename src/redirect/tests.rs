use super::*;

fn from(pairs: &[(&str, &str)]) -> Result<Redirects, ConfigError> {
    Redirects::from_lookup(&|name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

#[test]
fn unset_is_no_redirect() {
    assert_eq!(from(&[]), Ok(Redirects::default()));
}

#[test]
fn only_https_urls_with_a_host() {
    for bad in [
        "http://shop.example/ok",
        "https://",
        "https:///x",
        "javascript:alert(1)",
        "https://a b",
        "https://u@evil",
    ] {
        for name in ["SUCCESS_REDIRECT_URL", "FAILURE_REDIRECT_URL"] {
            assert_eq!(from(&[(name, bad)]).unwrap_err().variable, name, "{bad}");
        }
    }
    assert!(from(&[("SUCCESS_REDIRECT_URL", "https://app.example/installed?x=1")]).is_ok());
}

#[test]
fn failure_location_appends_the_reason() {
    let r = |url: &str| {
        from(&[("FAILURE_REDIRECT_URL", url)])
            .unwrap()
            .failure_location("forged_state")
            .unwrap()
    };
    assert_eq!(
        r("https://a.example/failed"),
        "https://a.example/failed?reason=forged_state"
    );
    assert_eq!(
        r("https://a.example/f?lang=ko"),
        "https://a.example/f?lang=ko&reason=forged_state"
    );
    assert_eq!(
        r("https://a.example/f#top"),
        "https://a.example/f?reason=forged_state#top"
    );
    assert_eq!(Redirects::default().failure_location("x"), None);
}
