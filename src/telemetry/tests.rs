use super::*;

#[test]
fn filter_precedence_and_lambda_levels() {
    assert_eq!(
        log_filter(Some("debug,hyper=warn"), Some("ERROR")),
        "debug,hyper=warn"
    );
    assert_eq!(log_filter(None, Some("FATAL")), "error");
    assert_eq!(log_filter(Some(" "), Some("warn")), "warn");
    assert_eq!(log_filter(None, Some("DEBUG")), "debug");
    assert_eq!(log_filter(None, None), "info,lambda_runtime=warn");
    assert_eq!(log_filter(None, Some("INFO")), "info,lambda_runtime=warn");
}

#[test]
fn fingerprint_is_short_and_stable() {
    let f = code_fingerprint("Kd4GXxJdLpF5XvEOVSDQVD");
    assert_eq!(f.len(), 12);
    assert_eq!(f, code_fingerprint("Kd4GXxJdLpF5XvEOVSDQVD"));
    assert!(!f.contains("Kd4G"));
}

#[test]
fn metrics_line_is_emf() {
    let line = metrics_line("fn", "req-1", 500, 12.34567, Some(3.0));
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], METRICS_NAMESPACE);
    for metric in directive["Metrics"].as_array().unwrap() {
        let name = metric["Name"].as_str().unwrap();
        assert!(line[name].is_number(), "{name} has no value");
    }
    assert_eq!(line["Errors"], 1);
    assert_eq!(line["Latency"], 12.346);
    assert!(
        line.get("level").is_none(),
        "a level would let Lambda filter metrics away"
    );
}
