//! botocore, installed from PyPI into `target/` on first use, as the independent implementation that RDS IAM auth
//! tokens are checked against (`generate_db_auth_token` with fixed credentials and a fixed clock).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::postgres::workspace_root;

const VERSION: &str = "1.43.11";

const SCRIPT: &str = r#"
import datetime, json, sys
from unittest import mock
import botocore.session, botocore.auth
out = []
for case in json.load(sys.stdin):
    fixed = datetime.datetime.fromtimestamp(case["unix"], datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
        session = botocore.session.get_session()
        session.set_credentials(case["access_key_id"], case["secret_access_key"], case.get("session_token"))
        client = session.create_client("rds", region_name=case["region"])
        out.append(client.generate_db_auth_token(case["host"], case["port"], case["user"]))
json.dump(out, sys.stdout)
"#;

/// A `python3` command whose `import botocore` finds the pinned botocore.
fn python() -> Result<Command, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| {
            let dir = workspace_root()
                .join("target")
                .join(format!("botocore-{VERSION}"));
            if !dir.join("botocore").is_dir() {
                let output = Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--target",
                    ])
                    .arg(&dir)
                    .arg(format!("botocore=={VERSION}"))
                    .output()
                    .map_err(|e| format!("python3 -m pip: {e}"))?;
                if !output.status.success() {
                    return Err(format!(
                        "installing botocore failed: {}",
                        String::from_utf8_lossy(&output.stderr)
                    ));
                }
            }
            Ok(dir)
        })
        .clone()?;
    let mut command = Command::new("python3");
    command.env("PYTHONPATH", dir);
    Ok(command)
}

/// botocore's tokens for `cases`: objects with unix, access_key_id, secret_access_key, session_token (or null),
/// region, host, port, user.
pub fn db_auth_tokens(cases: &Value) -> Result<Vec<String>, String> {
    let mut child = python()?
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(cases.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "botocore: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}
