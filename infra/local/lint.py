"""Template checks no general linter makes, run by `make lint` (and so by `make test`).

  python lint.py iam TEMPLATE          every IAM `*` (action or resource) in the template as AWS
                                       will see it (after the SAM transform, managed policies
                                       included) must be on ALLOWED below, with its reason
  python lint.py asl TEMPLATE OUTDIR   writes each state machine's definition with its
                                       DefinitionSubstitutions applied (as AWS will run it) to
                                       OUTDIR, for the ASL validator

The SAM transform runs offline (aws-sam-translator), as for the local deploy.
"""

import json
import re
import sys

from deploy import translate

# AWS managed policies SAM attaches, and the statements in them that use `*`.
MANAGED_POLICIES = {
    # Tracing: Active on a function. X-Ray's write actions take no resource ARN.
    "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess": [
        {"Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                    "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"], "Resource": "*"},
    ],
    # Every function's basic execution role: its own log group, which SAM does not narrow.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
}

# (action pattern, why `*` is the only resource AWS accepts for it)
ALLOWED = [
    (r"xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets|GetSamplingStatisticSummaries)",
     "X-Ray write and sampling actions do not support resource-level permissions"),
    (r"logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries|"
     r"PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups)",
     "Step Functions logging to CloudWatch Logs: these vended-log actions take no resource ARN"),
    (r"logs:(CreateLogGroup|CreateLogStream|PutLogEvents)",
     "AWSLambdaBasicExecutionRole (SAM's default for every function), AWS managed; the log groups "
     "themselves are created by the template with their retention"),
]


def statements(document):
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value):
    return value if isinstance(value, list) else [value]


def iam(template):
    cfn, _, _, _ = translate(template, [], "us-east-1")
    problems = []
    checked = 0
    for logical_id, resource in cfn["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [(p.get("PolicyName", "?"), p["PolicyDocument"]) for p in props.get("Policies", [])]
            for arn in props.get("ManagedPolicyArns", []):
                arn_text = arn if isinstance(arn, str) else json.dumps(arn)
                arn_text = re.sub(r"\$\{AWS::Partition\}|aws-[a-z-]+", "aws", arn_text)
                key = next((k for k in MANAGED_POLICIES if k in arn_text or k.replace("arn:aws", "arn:${AWS::Partition}") in arn_text), None)
                if key is None:
                    problems.append(f"{logical_id}: managed policy {arn_text} is not known to this check")
                    continue
                documents.append((key, {"Statement": MANAGED_POLICIES[key]}))
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append((logical_id, props["PolicyDocument"]))
        for name, document in documents:
            for statement in statements(document):
                if statement.get("Effect", "Allow") != "Allow":
                    continue
                checked += 1
                actions = as_list(statement.get("Action", []))
                resources = as_list(statement.get("Resource", []))
                for action in actions:
                    if isinstance(action, str) and "*" in action:
                        problems.append(f"{logical_id}/{name}: wildcard action {action}")
                if any(r == "*" for r in resources):
                    for action in actions:
                        if not any(re.fullmatch(pattern, action) for pattern, _ in ALLOWED):
                            problems.append(f"{logical_id}/{name}: {action} on resource * is not on the allow-list")
    for problem in problems:
        print("iam:", problem, file=sys.stderr)
    print(f"iam: {checked} allow statements checked, {len(problems)} problems")
    return 1 if problems or checked == 0 else 0


def asl(template, outdir):
    import os
    _, _, definitions, _ = translate(template, [], "us-east-1")
    os.makedirs(outdir, exist_ok=True)
    # Only this template's machines: a renamed or removed one must not be validated from before.
    for old in os.listdir(outdir):
        if old.endswith(".asl.json"):
            os.remove(os.path.join(outdir, old))
    for logical_id, spec in definitions.items():
        text = spec["text"]
        for key, value in spec["substitutions"].items():
            # The values are intrinsics until deploy time; what matters to the validator is that
            # each placeholder becomes a value of the right kind (here, a queue URL).
            stand_in = f"https://sqs.us-east-1.amazonaws.com/123456789012/{key}"
            text = text.replace("${" + key + "}", stand_in)
        left = re.findall(r"\$\{[A-Za-z0-9]+\}", text)
        if left:
            print(f"asl: {logical_id} has placeholders without a substitution: {left}", file=sys.stderr)
            return 1
        json.loads(text)
        with open(f"{outdir}/{logical_id}.asl.json", "w") as f:
            f.write(text)
        print(f"asl: {outdir}/{logical_id}.asl.json")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "iam" and len(sys.argv) == 3:
        sys.exit(iam(sys.argv[2]))
    if command == "asl" and len(sys.argv) == 4:
        sys.exit(asl(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
