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
fn fingerprint_is_the_start_of_the_sha256() {
    // FIPS 180-2's test vector: SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.
    assert_eq!(code_fingerprint("abc"), "ba7816bf8f01");
}

#[test]
fn libraries_log_at_info_at_most_whatever_the_filter() {
    let at = |level, target| {
        LibrariesAtInfo::allows(&log::Metadata::builder().level(level).target(target).build())
    };
    // tokio-postgres logs a statement's parameters at DEBUG, lambda_runtime the raw event at TRACE.
    assert!(!at(Level::Debug, "tokio_postgres::query"));
    assert!(!at(Level::Trace, "lambda_runtime::layers::api_response"));
    assert!(at(Level::Info, "tokio_postgres::connection"));
    assert!(at(Level::Warn, "lambda_runtime"));
    // The function's own targets keep every level.
    assert!(at(Level::Trace, "database"));
    assert!(at(Level::Debug, "request"));
    assert!(
        !at(Level::Debug, "requests"),
        "a prefix of a library's name is not ours"
    );
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
