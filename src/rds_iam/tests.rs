use super::*;
use std::time::Duration;

fn credentials(token: Option<&str>) -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        session_token: token.map(|t| Secret::new(t.to_owned())),
    }
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

#[test]
fn dates() {
    assert_eq!(
        timestamp(at(0)),
        ("19700101".into(), "19700101T000000Z".into())
    );
    assert_eq!(
        timestamp(at(1_795_599_000)),
        ("20261125".into(), "20261125T093000Z".into())
    );
    assert_eq!(
        timestamp(at(951_782_400)),
        ("20000229".into(), "20000229T000000Z".into())
    );
    assert_eq!(
        timestamp(at(4_107_542_399)),
        ("21000228".into(), "21000228T235959Z".into())
    );
}

/// Recorded from botocore 1.43 `generate_db_auth_token` with these credentials and the clock fixed at
/// 2026-11-25T09:30:00Z; `tests/rds_iam.rs` compares against a live botocore for more cases.
#[test]
fn matches_botocore() {
    let host = "mydb.cluster-abc.ap-northeast-2.rds.amazonaws.com";
    assert_eq!(
        auth_token(
            host,
            5432,
            "callback_writer",
            "ap-northeast-2",
            &credentials(None),
            at(1_795_599_000)
        ),
        "mydb.cluster-abc.ap-northeast-2.rds.amazonaws.com:5432/?Action=connect&DBUser=callback_writer\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Fap-northeast-2%2Frds-db\
         %2Faws4_request&X-Amz-Date=20261125T093000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
         &X-Amz-Signature=8b03b456ac29eeb3d8b9cc002cb3c2c84ff8a0d1b44bd56b101d98739ac95bb8"
    );
    let token = "IQoJb3JpZ2luX2VjEOr//////////wEaDmFwLW5vcnRoZWFzdC0y+/=";
    assert_eq!(
        auth_token(
            host,
            5432,
            "callback_writer",
            "ap-northeast-2",
            &credentials(Some(token)),
            at(1_795_599_000)
        ),
        "mydb.cluster-abc.ap-northeast-2.rds.amazonaws.com:5432/?Action=connect&DBUser=callback_writer\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Fap-northeast-2%2Frds-db\
         %2Faws4_request&X-Amz-Date=20261125T093000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
         &X-Amz-Security-Token=IQoJb3JpZ2luX2VjEOr%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaDmFwLW5vcnRoZWFzdC0y%2B%2F%3D\
         &X-Amz-Signature=c26bc51ba6c8b14db3f6eda004b4289f123b29301020254bc3e4df994444875a"
    );
}

/// Against a live botocore (installed from PyPI by the test setup) for regions, ports, users, tokens, times.
#[test]
#[ignore = "opt-in: installs botocore from PyPI into target/ (cargo test -- --ignored)"]
fn matches_botocore_live() {
    let mut cases = Vec::new();
    for (i, region) in ["ap-northeast-2", "us-east-1", "eu-central-1", "cn-north-1"]
        .into_iter()
        .enumerate()
    {
        for (j, port) in [5432u16, 6432, 15432].into_iter().enumerate() {
            let user = ["callback_writer", "app user", "x@y+z"][j];
            for token in [
                None,
                Some("FwoGZXIvYXdzEJr//////////wEaDM+token/with=specials"),
                Some("short"),
            ] {
                cases.push(serde_json::json!({
                    "unix": 1_700_000_000u64 + (i * 86_400 * 97 + j * 3_607) as u64,
                    "access_key_id": format!("ASIA{i}{j}EXAMPLE"),
                    "secret_access_key": format!("secret/{i}+{j}=key"),
                    "session_token": token,
                    "region": region,
                    "host": format!("db-{i}.proxy-c0ffee.{region}.rds.amazonaws.com"),
                    "port": port,
                    "user": user,
                }));
            }
        }
    }
    let expected =
        devtools::botocore::db_auth_tokens(&serde_json::Value::from(cases.clone())).unwrap();
    assert_eq!(expected.len(), cases.len());
    for (case, expected) in cases.iter().zip(expected) {
        let credentials = AwsCredentials {
            access_key_id: case["access_key_id"].as_str().unwrap().into(),
            secret_access_key: Secret::new(case["secret_access_key"].as_str().unwrap().into()),
            session_token: case["session_token"]
                .as_str()
                .map(|t| Secret::new(t.to_owned())),
        };
        let ours = auth_token(
            case["host"].as_str().unwrap(),
            case["port"].as_u64().unwrap() as u16,
            case["user"].as_str().unwrap(),
            case["region"].as_str().unwrap(),
            &credentials,
            at(case["unix"].as_u64().unwrap()),
        );
        assert_eq!(ours, expected, "{case}");
    }
}

#[test]
fn credentials_are_required_and_never_printed() {
    let none = AwsCredentials::from_lookup(&|_: &str| None);
    assert_eq!(none.unwrap_err().variable, "AWS_ACCESS_KEY_ID");
    let shown = format!("{:?}", credentials(Some("secret-token")));
    assert!(
        !shown.contains("wJalr") && !shown.contains("secret-token"),
        "{shown}"
    );
}
