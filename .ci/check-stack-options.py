"""Every combination of the stack's options, resolved and scanned ("each option combination deploys what it should,
and cfn-lint and checkov stay clean in each").

cfn-lint and checkov read a template statically: checkov even drops the resources whose condition is false under
the parameters' defaults, so the default template alone says nothing about the other options. So for each
combination of

    UseRdsProxy x DatabaseAuth x SecretDelivery x CreateSecretsManagerEndpoint x SourceIpRateLimit x EncryptionKmsKeyArn

this writes the template as CloudFormation would see it (parameters set, conditions resolved, resources of false
conditions removed, Fn::If and AWS::NoValue resolved) to OUT/<combination>.json, and checks what it holds: the
template's Rules accept the parameters, every reference names something that exists, the function's security group
allows exactly the connections that combination needs (and the database, proxy and endpoint groups the matching
inbound ones), the environment carries a secret only with deploy-time delivery, there is one front door with its
permission and access log (and the web ACL with the REST API), and the customer key is used wherever it should be.
Then cfn-lint runs on every combination, and checkov on template.yaml and every combination, failing on any
finding (and on any checkov skip that is not listed below, or listed without its reason in the template).

    python3 .ci/check-stack-options.py --cfn-lint CFN_LINT --checkov CHECKOV [--out DIR] template.yaml
"""

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

# The checkov findings the template skips, each with its reason in the template (resource Metadata).
EXPECTED_SKIPS = {
    "CKV_AWS_116": "CallbackFunction",
    "CKV_AWS_173": "CallbackFunction",
    "CKV_AWS_158": "FunctionLogGroup ApiAccessLogGroup",
    "CKV_AWS_73": "CallbackRestApi",
    "CKV_AWS_120": "CallbackRestApi",
    "CKV_AWS_192": "SourceIpRateLimitAcl",
}

OPTIONS = {
    "UseRdsProxy": ["false", "true"],
    "DatabaseAuth": ["iam", "secret"],
    "SecretDelivery": ["extension", "deploy-time"],
    "CreateSecretsManagerEndpoint": ["true", "false"],
    "SourceIpRateLimit": ["0", "100"],
    "EncryptionKmsKeyArn": ["", "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
}

EXAMPLE = {
    "VpcId": "vpc-0123456789abcdef0",
    "PrivateSubnetIds": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
    "DatabaseSecurityGroupId": "sg-0123456789abcdef0",
    "StateSecretArn": "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:cafe24-oauth/state-secret-AbCdEf",
}
DIRECT_HOST = "mydb.abcdefghijkl.ap-northeast-2.rds.amazonaws.com"
RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DATABASE_SECRET = "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:rds!db-0123-AbCdEf"
INSTANCE = "mydb"

PSEUDO = {"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition", "AWS::Region",
          "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}
NO_VALUE = object()


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref X, !If [...]) as their long forms ({"Ref": X}, {"Fn::If": ...})."""


def _long_form(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


TemplateLoader.add_multi_constructor("!", _long_form)


def parameters_for(combination):
    """The parameters a deploy of this combination gives: the examples, plus what its options require."""
    values = dict(EXAMPLE, **combination)
    proxy = combination["UseRdsProxy"] == "true"
    if not proxy:
        values["DatabaseHost"] = DIRECT_HOST
        if combination["DatabaseAuth"] == "iam":
            values["DatabaseResourceId"] = RESOURCE_ID
    else:
        values["DatabaseInstanceIdentifier"] = INSTANCE
    if proxy or combination["DatabaseAuth"] == "secret":
        values["DatabaseSecretArn"] = DATABASE_SECRET
    return values


class Resolver:
    def __init__(self, template, values):
        self.template = template
        self.params = {}
        for name, spec in template["Parameters"].items():
            value = values.get(name, spec.get("Default"))
            if value is None:
                raise SystemExit(f"no value for the required parameter {name}")
            self.params[name] = str(value)
        self.conditions = {}
        for name in template.get("Conditions", {}):
            self.condition(name)

    def value(self, expr):
        """A condition or rule operand: a literal, a parameter, or a nested function."""
        if isinstance(expr, dict) and "Ref" in expr:
            return self.params[expr["Ref"]]
        if isinstance(expr, dict):
            return self.truth(expr)
        if isinstance(expr, list):
            return [self.value(item) for item in expr]
        return str(expr).lower() if isinstance(expr, bool) else str(expr)

    def truth(self, expr):
        (name, args), = expr.items()
        if name == "Condition":
            return self.condition(args)
        if name == "Fn::Equals":
            return self.value(args[0]) == self.value(args[1])
        if name == "Fn::Not":
            return not self.truth(args[0])
        if name == "Fn::And":
            return all(self.truth(a) for a in args)
        if name == "Fn::Or":
            return any(self.truth(a) for a in args)
        if name == "Fn::Contains":
            return self.value(args[1]) in self.value(args[0])
        raise SystemExit(f"cannot evaluate {name}")

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.template["Conditions"][name])
        return self.conditions[name]

    def resolve(self, node):
        """Fn::If and AWS::NoValue resolved; everything else kept as CloudFormation would receive it."""
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, yes, no = node["Fn::If"]
                return self.resolve(yes if self.condition(name) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            out = {}
            for key, value in node.items():
                value = self.resolve(value)
                if value is not NO_VALUE:
                    out[key] = value
            return out
        if isinstance(node, list):
            return [item for item in (self.resolve(i) for i in node) if item is not NO_VALUE]
        return node

    def rule_problems(self):
        problems = []
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.truth(assertion["Assert"]):
                    problems.append(f"rule {name}: {assertion['AssertDescription']}")
        return problems

    def resolved_template(self):
        t = self.template
        out = {k: v for k, v in t.items() if k not in ("Conditions", "Resources", "Outputs", "Parameters")}
        out["Parameters"] = {}
        for name, spec in t["Parameters"].items():
            spec = dict(spec)
            value = self.params[name]
            spec["Default"] = int(value) if spec["Type"] == "Number" else value
            out["Parameters"][name] = spec
        out["Resources"] = {}
        for name, resource in t["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            resource = {k: v for k, v in resource.items() if k != "Condition"}
            out["Resources"][name] = self.resolve(resource)
        out["Outputs"] = {}
        for name, output in t.get("Outputs", {}).items():
            if "Condition" in output and not self.condition(output["Condition"]):
                continue
            out["Outputs"][name] = self.resolve({k: v for k, v in output.items() if k != "Condition"})
        return out


def references(node):
    """Every name a Ref, Fn::GetAtt, Fn::Sub or DependsOn points at."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value[0]
            elif key == "Fn::Sub":
                text, names = (value, {}) if isinstance(value, str) else value
                for var in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if var not in names:
                        yield var.split(".", 1)[0]
                yield from references(names)
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def check(combination, t):
    """What this combination must deploy; returns the problems."""
    problems = []
    res = t["Resources"]
    known = set(t["Parameters"]) | set(res) | PSEUDO
    for name, node in list(res.items()) + [("Outputs", t["Outputs"])]:
        for target in references(node):
            if target not in known:
                problems.append(f"{name} refers to {target}, which this combination does not have")
    for name, resource in res.items():
        depends = resource.get("DependsOn", [])
        for target in [depends] if isinstance(depends, str) else depends:
            if target not in res:
                problems.append(f"{name} depends on {target}, which this combination does not have")

    proxy = combination["UseRdsProxy"] == "true"
    iam = combination["DatabaseAuth"] == "iam"
    runtime = combination["SecretDelivery"] == "extension"
    endpoint = runtime and combination["CreateSecretsManagerEndpoint"] == "true"
    rest = combination["SourceIpRateLimit"] != "0"
    key = combination["EncryptionKmsKeyArn"]

    def is_ref(value, name):
        return value in ({"Ref": name}, {"Fn::GetAtt": [name, "GroupId"]})

    def target(rule):
        for field in ("DestinationSecurityGroupId", "SourceSecurityGroupId"):
            if field in rule:
                value = rule[field]
                return value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
        return rule.get("CidrIp") or rule.get("DestinationPrefixListId")

    def rule_key(rule):
        port = rule.get("FromPort")
        port = port.get("Ref") if isinstance(port, dict) else port
        return (rule.get("IpProtocol"), port, target(rule))

    # The function's outbound rules: exactly what this combination connects to.
    egress = [rule_key(r) for r in res["FunctionSecurityGroup"]["Properties"].get("SecurityGroupEgress", [])]
    egress += [rule_key(r["Properties"]) for r in res.values()
               if r["Type"] == "AWS::EC2::SecurityGroupEgress" and is_ref(r["Properties"]["GroupId"],
                                                                            "FunctionSecurityGroup")]
    expected = {("tcp", 5432, "ProxySecurityGroup") if proxy else ("tcp", "DatabasePort", "DatabaseSecurityGroupId")}
    if endpoint:
        expected.add(("tcp", 443, "SecretsManagerEndpointSecurityGroup"))
    elif runtime:
        expected.add(("tcp", 443, "0.0.0.0/0"))
    if sorted(egress, key=str) != sorted(expected, key=str):
        problems.append(f"the function's egress is {sorted(egress, key=str)}, expected {sorted(expected, key=str)}")
    for rule in res["FunctionSecurityGroup"]["Properties"].get("SecurityGroupEgress", []):
        if str(rule.get("IpProtocol")) == "-1":
            problems.append("the function's security group allows all protocols")

    # The inbound rules that answer them.
    def group(value):
        value = next(iter(value.values()))
        return value if isinstance(value, str) else value[0]

    ingress = sorted(((rule_key(r["Properties"]), group(r["Properties"]["GroupId"]))
                      for r in res.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"), key=str)
    expected_in = [(("tcp", "DatabasePort", "ProxySecurityGroup" if proxy else "FunctionSecurityGroup"),
                    "DatabaseSecurityGroupId")]
    if proxy:
        expected_in.append((("tcp", 5432, "FunctionSecurityGroup"), "ProxySecurityGroup"))
    if endpoint:
        expected_in.append((("tcp", 443, "FunctionSecurityGroup"), "SecretsManagerEndpointSecurityGroup"))
    if sorted(ingress, key=str) != sorted(expected_in, key=str):
        problems.append(f"the inbound rules are {ingress}, expected {sorted(expected_in, key=str)}")
    for name, r in res.items():
        if r["Type"] == "AWS::EC2::SecurityGroup" and r["Properties"].get("SecurityGroupIngress"):
            problems.append(f"{name} has inline inbound rules (they belong in SecurityGroupIngress resources)")

    # The function: credentials as the options say, the layer only for run-time secrets.
    fn = res["CallbackFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    secret_vars = {"EXPECTED_STATE_SECRET", "PGPASSWORD"} & set(env)
    want = set() if runtime else {"EXPECTED_STATE_SECRET"} | (set() if iam else {"PGPASSWORD"})
    if secret_vars != want:
        problems.append(f"secret variables in the environment: {sorted(secret_vars)}, expected {sorted(want)}")
    if ("PGAUTH" in env) != iam:
        problems.append("PGAUTH=iam must be set exactly with DatabaseAuth=iam")
    if bool(fn.get("Layers")) != runtime:
        problems.append("the secrets extension's layer must be there exactly with SecretDelivery=extension")
    if ("Endpoint" in json.dumps(env.get("PGHOST"))) != proxy:
        problems.append("PGHOST must be the proxy's endpoint exactly with UseRdsProxy=true")
    policies = {p["PolicyName"] for p in res["FunctionRole"]["Properties"].get("Policies", [])}
    if ("read-secrets" in policies) != runtime or ("rds-iam-connect" in policies) != iam:
        problems.append(f"the function's role has {sorted(policies)}")
    if ("decrypt-environment" in policies) != bool(key):
        problems.append("kms:Decrypt for the environment must come exactly with EncryptionKmsKeyArn")

    # One front door, its permission, its access log; the web ACL exactly with the REST API.
    apis = {name for name, r in res.items() if r["Type"] in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api")}
    if apis != {"CallbackRestApi" if rest else "CallbackApi"}:
        problems.append(f"the APIs are {sorted(apis)}")
    for api in apis:
        props = res[api]["Properties"]
        log = props.get("AccessLogSetting") or props.get("AccessLogSettings") or {}
        if log.get("DestinationArn") != {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}:
            problems.append(f"{api} does not write its access log to ApiAccessLogGroup")
    permissions = [r for r in res.values() if r["Type"] == "AWS::Lambda::Permission"]
    if len(permissions) != 1 or not any(api in str(permissions[0]["Properties"]["SourceArn"]) for api in apis):
        problems.append("exactly one invoke permission, for the API there is, is expected")
    acls = [r for r in res.values() if r["Type"] == "AWS::WAFv2::WebACL"]
    associations = [r for r in res.values() if r["Type"] == "AWS::WAFv2::WebACLAssociation"]
    if (len(acls), len(associations)) != ((1, 1) if rest else (0, 0)):
        problems.append(f"{len(acls)} web ACLs and {len(associations)} associations")
    for acl in acls:
        rules = acl["Properties"]["Rules"]
        limit = rules[0]["Statement"]["RateBasedStatement"]
        if limit.get("AggregateKeyType") != "IP" or limit.get("Limit") != {"Ref": "SourceIpRateLimit"}:
            problems.append("the web ACL's rule must limit each source IP address to SourceIpRateLimit")
    url = str(t["Outputs"]["CallbackUrl"])
    if ("CallbackRestApi" in url) != rest or ("CallbackApi}" in url) == rest:
        problems.append("CallbackUrl must be the URL of the API there is")

    # The customer key, wherever the stack stores something.
    keyed = [fn.get("KmsKeyArn")] + [r["Properties"].get("KmsKeyId") for r in res.values()
                                     if r["Type"] == "AWS::Logs::LogGroup"]
    if (keyed != [{"Ref": "EncryptionKmsKeyArn"}] * 3) if key else any(keyed):
        problems.append(f"the environment's and log groups' keys are {keyed}")
    return problems


def combination_name(c):
    return "-".join([
        "proxy" if c["UseRdsProxy"] == "true" else "direct",
        c["DatabaseAuth"],
        c["SecretDelivery"],
        "endpoint" if c["CreateSecretsManagerEndpoint"] == "true" else "no-endpoint",
        "rest-waf" if c["SourceIpRateLimit"] != "0" else "http",
        "kms" if c["EncryptionKmsKeyArn"] else "no-kms",
    ])


def skips_in(template):
    found = {}
    for name, resource in template["Resources"].items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            if len(str(skip.get("comment", "")).split()) < 12:
                raise SystemExit(f"{name}: the checkov skip {skip.get('id')} needs its reason in a comment")
            found.setdefault(skip["id"], []).append(name)
    return {k: " ".join(v) for k, v in found.items()}


def run_checkov(checkov, paths):
    """checkov over the files; returns (per-file summary, problems)."""
    args = [checkov, "--framework", "cloudformation", "--skip-download", "-o", "json"]
    for path in paths:
        args += ["-f", path]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    try:
        reports = json.loads(result.stdout)
    except ValueError:
        return {}, [f"checkov printed no JSON (exit {result.returncode}): {result.stderr[-2000:]}"]
    reports = reports if isinstance(reports, list) else [reports]
    summary = {os.path.basename(p): [0, 0, 0] for p in paths}
    problems = []
    for report in reports:
        if report.get("summary", {}).get("parsing_errors"):
            problems.append(f"checkov could not parse: {report['results'].get('parsing_errors')}")
        for kind, column in (("passed_checks", 0), ("failed_checks", 1), ("skipped_checks", 2)):
            for finding in report.get("results", {}).get(kind, []):
                file = os.path.basename(finding["file_path"])
                summary.setdefault(file, [0, 0, 0])[column] += 1
                if kind == "failed_checks":
                    problems.append(f"{file}: {finding['check_id']} {finding['check_name']} ({finding['resource']})")
                if kind == "skipped_checks" and finding["check_id"] not in EXPECTED_SKIPS:
                    problems.append(f"{file}: {finding['check_id']} is skipped but not listed in EXPECTED_SKIPS")
    for file, (passed, _, _) in summary.items():
        if passed == 0:
            problems.append(f"{file}: checkov reported nothing (not scanned?)")
    return summary, problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfn-lint", required=True)
    parser.add_argument("--checkov", required=True)
    parser.add_argument("--out", default="target/ci-stack-options")
    parser.add_argument("template")
    args = parser.parse_args()

    with open(args.template, encoding="utf-8") as f:
        template = yaml.load(f, Loader=TemplateLoader)
    problems = []
    skips = skips_in(template)
    if skips != EXPECTED_SKIPS:
        problems.append(f"the template's checkov skips {skips} differ from EXPECTED_SKIPS {EXPECTED_SKIPS}")
    missing = set(OPTIONS) - set(template["Parameters"])
    if missing:
        raise SystemExit(f"template.yaml lacks the options {sorted(missing)}")

    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    paths = []
    for values in itertools.product(*OPTIONS.values()):
        combination = dict(zip(OPTIONS, values))
        name = combination_name(combination)
        resolver = Resolver(template, parameters_for(combination))
        found = resolver.rule_problems()
        resolved = resolver.resolved_template()
        found += check(combination, resolved)
        problems += [f"{name}: {p}" for p in found]
        path = os.path.join(args.out, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(resolved, f, indent=1)
        paths.append(path)
    print(f"{len(paths)} option combinations resolved and checked into {args.out}/")

    # cfn-lint on each combination (.ci/run lints template.yaml itself). In a resolved template the parameters
    # that combination does not use are unused (W2001), by construction.
    lint = subprocess.run([args.cfn_lint, "--ignore-checks", "W2001", "--"] + paths, check=False)
    if lint.returncode:
        problems.append(f"cfn-lint on the combinations: exit {lint.returncode}")
    else:
        print(f"cfn-lint: {len(paths)} combinations clean")

    summary, found = run_checkov(args.checkov, [args.template] + paths)
    problems += found
    for file, (passed, failed, skipped) in summary.items():
        print(f"checkov {file}: {passed} passed, {failed} failed, {skipped} skipped")

    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
