"""Nothing the API Gateway writes can hold the callback's query string ("the access log never holds the code or the
state"). The callback URL carries a live authorization code and the signed state in its query, so:

- every access log format in the template (HTTP API AccessLogSettings, REST API AccessLogSetting) may name only the
  $context variables allowed below, none of which can carry the query string, a header or a client-chosen path; it
  must name $context.requestId and $context.integration.requestId (the gateway's line finds the function's), and it
  must be JSON once its variables are filled in;
- REST API execution logging stays off (at INFO with data tracing it logs the whole request);
- the AWS WAF web ACL keeps no sampled requests and the stack has no WAF logging configuration (both keep the URI's
  query).

Known-bad formats are checked first, so the check itself is seen to fail on them.

    python3 .ci/check-access-log.py template.yaml
"""

import json
import re
import sys

import yaml


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as plain values: only literal strings matter here."""


TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)

# Each allowed variable, with why it cannot carry the query string (HTTP API and REST API access log variables).
ALLOWED = {
    "$context.requestId": "an id API Gateway makes",
    "$context.extendedRequestId": "an id API Gateway makes",
    "$context.integration.requestId": "Lambda's request id for the invocation (the function's request_id)",
    "$context.awsEndpointRequestId": "Lambda's request id for the invocation",
    "$context.apiId": "the API's id",
    "$context.stage": "the stage's name",
    "$context.identity.sourceIp": "the TCP peer's address",
    "$context.httpMethod": "one of API Gateway's methods",
    "$context.routeKey": "the matched route's key from the template (or -), never the request's path",
    "$context.resourcePath": "the matched resource's template path, never the request's path",
    "$context.protocol": "HTTP/1.1 or HTTP/2",
    "$context.status": "a status code",
    "$context.responseLength": "a byte count",
    "$context.responseLatency": "milliseconds",
    "$context.integration.latency": "milliseconds",
    "$context.integrationLatency": "milliseconds",
    "$context.integration.status": "the status code the function answered",
    "$context.integration.integrationStatus": "the status code of Lambda's Invoke call",
    "$context.integrationStatus": "the status code of Lambda's Invoke call",
    "$context.error.message": "API Gateway's own error message (Not Found, Too Many Requests, ...)",
    "$context.error.responseType": "a gateway response type (THROTTLED, WAF_FILTERED, ...)",
    "$context.wafResponseCode": "WAF_ALLOW or WAF_BLOCK",
    "$context.requestTime": "a time",
    "$context.requestTimeEpoch": "a time",
}
REQUIRED = ["$context.requestId", "$context.integration.requestId"]
# Why some tempting variables are refused (any variable not in ALLOWED is refused; these get a reason).
REFUSED = {
    "$context.path": "the request's path as sent: a client can put anything there",
    "$context.requestOverride": "request overrides can hold query string values",
    "$context.responseOverride": "response overrides can hold header values",
    "$context.integration.error": "the integration's error text",
    "$context.integrationErrorMessage": "the integration's error text",
    "$context.error.validationErrorString": "names request parameters and their problems",
    "$context.identity.userAgent": "a request header",
    "$context.domainName": "the Host header",
    "$context.domainPrefix": "the Host header",
    "$context.authorizer": "authorizer output",
    "$context.identity.clientCert": "client certificate data",
    "$input": "the request itself (its params() has the query string)",
    "$stageVariables": "stage variables",
    "$util": "functions over the request",
    "$method": "the method request",
}
VARIABLE = re.compile(r"\$[A-Za-z][A-Za-z0-9_.]*")


def format_problems(fmt):
    problems = []
    names = []
    for at in range(len(fmt)):
        if fmt[at] != "$":
            continue
        match = VARIABLE.match(fmt, at)
        name = match.group(0).rstrip(".") if match else fmt[at : at + 12]
        names.append(name)
        if name in ALLOWED:
            continue
        reason = next((why for prefix, why in REFUSED.items() if name == prefix or name.startswith(prefix + ".")), None)
        problems.append(f"{name!r} is not allowed" + (f" ({reason})" if reason else " (not on the allow-list)"))
    for name in REQUIRED:
        if name not in names:
            problems.append(f"{name} is missing (the gateway's line must lead to the function's)")
    try:
        line = json.loads(VARIABLE.sub("x", fmt))
        if not isinstance(line, dict):
            problems.append("the format is not a JSON object")
    except ValueError as e:
        problems.append(f"the format is not JSON once filled in ({e}); quote every variable")
    return problems


def self_test():
    ids = '"a":"$context.requestId","b":"$context.integration.requestId"'
    good = "{" + ids + "}"
    bad = ["{" + ids + "," + extra + "}" for extra in [
        '"p":"$context.path"',
        '"q":"$input.params()"',
        '"q":"$context.requestOverride.querystring.code"',
        '"e":"$context.integrationErrorMessage"',
        '"u":"$context.identity.userAgent"',
        '"x":"${context.path}"',
        '"s":$context.status',
    ]] + ['{"a":"$context.requestId"}']
    assert not format_problems(good), format_problems(good)
    for fmt in bad:
        assert format_problems(fmt), f"the check lets through {fmt}"


def main():
    self_test()
    with open(sys.argv[1], encoding="utf-8") as f:
        resources = yaml.load(f, Loader=TemplateLoader)["Resources"]
    problems = []
    formats = 0
    for name, resource in resources.items():
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        settings = None
        if kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Stage"):
            settings = props.get("AccessLogSettings")
        elif kind in ("AWS::Serverless::Api", "AWS::ApiGateway::Stage"):
            settings = props.get("AccessLogSetting")
            for method in props.get("MethodSettings") or []:
                if method.get("LoggingLevel", "OFF") != "OFF" or method.get("DataTraceEnabled"):
                    problems.append(f"{name}: execution logging is on (it records the whole request)")
        elif kind == "AWS::WAFv2::WebACL":
            configs = [props.get("VisibilityConfig") or {}]
            configs += [(rule or {}).get("VisibilityConfig") or {} for rule in props.get("Rules") or []]
            if any(config.get("SampledRequestsEnabled") is not False for config in configs):
                problems.append(f"{name}: sampled requests must be off (they keep the request's URI and query)")
        elif kind == "AWS::WAFv2::LoggingConfiguration":
            problems.append(f"{name}: WAF logs record the query string")
        if kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Stage", "AWS::Serverless::Api",
                    "AWS::ApiGateway::Stage"):
            if not settings or not isinstance(settings.get("Format"), str):
                problems.append(f"{name}: no access log format written out in the template")
                continue
            formats += 1
            problems += [f"{name}: {problem}" for problem in format_problems(settings["Format"])]
    if formats == 0:
        problems.append("no access log format found")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{sys.argv[1]}: {formats} access log formats checked against {len(ALLOWED)} allowed variables")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
