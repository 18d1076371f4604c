use super::*;

#[test]
fn convention_payload_has_three_parts_and_a_fresh_nonce() {
    let a = convention_payload("demomall1").unwrap();
    let b = convention_payload("demomall1").unwrap();
    let parts: Vec<&str> = a.split(':').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], "demomall1");
    assert_eq!(parts[1].len(), 22);
    assert!(parts[2].parse::<u64>().unwrap() > 1_700_000_000);
    assert_ne!(a, b);
    assert!(
        StateKey::new("k").unwrap().sign(&a).is_some(),
        "the payload fits the state alphabet"
    );
}

#[test]
fn refuses_what_is_not_a_mall_id() {
    for bad in ["", "Demo", "demo-mall", "demo.mall", "a:b"] {
        assert!(convention_payload(bad).is_err(), "{bad:?}");
    }
}
