//! Hello world on `lambda_runtime`, shaped like the product's `bootstrap` (current-thread tokio, the runtime
//! without its default features): the floor the benchmark compares our start-up, memory and warm latency with.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn hello(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "statusCode": 200, "body": "hello" }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
