use std::time::Duration;

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
    assert_eq!(log_filter(None, None), "info");
    assert_eq!(log_filter(None, Some("INFO")), "info");
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
fn metrics_are_an_emf_document() {
    let metrics = Metrics::new(
        "fn",
        500,
        Duration::from_micros(12_345),
        Some(Duration::from_millis(3)),
    );
    let line = serde_json::to_value(&metrics).unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], METRICS_NAMESPACE);
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([["FunctionName"]])
    );
    assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let names: Vec<&str> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Callbacks",
            "Saved",
            "Rejected",
            "Errors",
            "Latency",
            "DatabaseLatency"
        ]
    );
    for name in names {
        assert!(line[name].is_number(), "{name} has no value");
    }
    assert_eq!(
        (line["Errors"].as_u64(), line["Saved"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(line["Latency"], 12.345);
    assert_eq!(line["FunctionName"], "fn");
    assert!(
        line.get("level").is_none(),
        "a level would let Lambda filter metrics away"
    );
    // Without a database call, no DatabaseLatency is declared or given.
    let line = serde_json::to_value(Metrics::new("fn", 403, Duration::ZERO, None)).unwrap();
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(line.get("DatabaseLatency").is_none());
    assert_eq!(line["Rejected"], 1);
}

#[test]
fn lambda_keeps_what_its_own_level_admits() {
    assert_eq!(
        lambda_keeps(None),
        LevelFilter::Trace,
        "no level set: Lambda filters nothing"
    );
    assert_eq!(lambda_keeps(Some("info")), LevelFilter::Info);
    assert_eq!(lambda_keeps(Some("ERROR")), LevelFilter::Error);
    assert_eq!(
        lambda_keeps(Some("FATAL")),
        LevelFilter::Off,
        "FATAL keeps no level the function writes"
    );
}
