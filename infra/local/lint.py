"""Template checks no general linter makes, run by `make lint` (and so by `make test`).

  python lint.py iam TEMPLATE          every IAM `*` (action or resource) in the template as AWS
                                       will see it (after the SAM transform, managed policies
                                       included) must be on ALLOWED below, with its reason
  python lint.py asl TEMPLATE OUTDIR   writes each state machine's definition with its
                                       DefinitionSubstitutions applied (as AWS will run it) to
                                       OUTDIR, for the ASL validator
  python lint.py alarms TEMPLATE       every SNS topic a CloudWatch alarm notifies is unencrypted
                                       or encrypted with a key of the template whose policy lets
                                       cloudwatch.amazonaws.com use it (never alias/aws/sns)
  python lint.py logs TEMPLATE         every API Gateway access-log destination and Step Functions
                                       log group is under /aws/vendedlogs/
  python lint.py callbacks TEMPLATE    every callback step's HeartbeatSeconds and TimeoutSeconds
                                       (template parameters) hold under the queue-wait budget
                                       (the rule in `callback_budget` below)

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
    (r"xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets|GetSamplingStatisticSummaries|"
     r"PutSpans|PutSpansForIndexing)",
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


def parameter_defaults(cfn):
    return {k: v.get("Default") for k, v in cfn.get("Parameters", {}).items()}


def asl(template, outdir):
    import os
    cfn, _, definitions, _ = translate(template, [], "us-east-1")
    defaults = parameter_defaults(cfn)
    os.makedirs(outdir, exist_ok=True)
    # Only this template's machines: a renamed or removed one must not be validated from before.
    for old in os.listdir(outdir):
        if old.endswith(".asl.json"):
            os.remove(os.path.join(outdir, old))
    for logical_id, spec in definitions.items():
        text = spec["text"]
        for key, value in spec["substitutions"].items():
            # The values are intrinsics until deploy time; what matters to the validator is that
            # each placeholder becomes a value of the right kind: a parameter's default (the
            # callback steps' seconds), or a queue URL.
            if isinstance(value, dict) and value.get("Ref") in defaults:
                stand_in = str(defaults[value["Ref"]])
            else:
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


def resolve(value, resources):
    """The logical id a `Ref` / `Fn::GetAtt` points at, or None for anything else."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str) and value["Ref"] in resources:
            return value["Ref"]
        target = value.get("Fn::GetAtt")
        if target is not None:
            name = target[0] if isinstance(target, list) else target.split(".")[0]
            return name if name in resources else None
    return None


def grants(statement, principal, actions):
    """Whether an Allow statement of a key policy grants `principal` (a service) every action."""
    import fnmatch
    if statement.get("Effect") != "Allow":
        return False
    who = statement.get("Principal", {})
    services = as_list(who.get("Service", [])) if isinstance(who, dict) else []
    if principal not in services:
        return False
    allowed = as_list(statement.get("Action", []))
    return all(any(fnmatch.fnmatchcase(a, pattern) for pattern in allowed) for a in actions)


# CloudWatch needs these on the topic's key to publish an alarm to an encrypted topic, and the
# AWS managed key's policy (alias/aws/sns) cannot grant them: alarm actions to a topic encrypted
# with it fail. https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
CLOUDWATCH_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]


def alarm_problems(cfn):
    resources = cfn["Resources"]
    problems = []
    topics = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource.get("Properties", {})
        for field in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in as_list(props.get(field, [])):
                target = resolve(action, resources)
                if target is None:
                    problems.append(f"{logical_id}: {field} {json.dumps(action)} is not a topic of this template, so its encryption cannot be checked")
                elif resources[target]["Type"] == "AWS::SNS::Topic":
                    topics.setdefault(target, []).append(logical_id)
    for topic, alarms in topics.items():
        key = resources[topic].get("Properties", {}).get("KmsMasterKeyId")
        if key is None:
            continue  # unencrypted: CloudWatch can publish (checkov's skip must give the reason)
        if isinstance(key, str) and "alias/aws/sns" in key:
            problems.append(f"{topic}: encrypted with the AWS managed key alias/aws/sns, whose policy does not let CloudWatch alarms publish ({len(alarms)} alarms, e.g. {alarms[0]})")
            continue
        key_id = resolve(key, resources)
        if key_id is not None and resources[key_id]["Type"] == "AWS::KMS::Alias":
            key_id = resolve(resources[key_id]["Properties"].get("TargetKeyId"), resources)
        if key_id is None or resources[key_id]["Type"] != "AWS::KMS::Key":
            problems.append(f"{topic}: its key {json.dumps(key)} is not a key of this template, so its policy cannot be checked")
            continue
        policy = resources[key_id]["Properties"].get("KeyPolicy", {})
        if not any(grants(st, "cloudwatch.amazonaws.com", CLOUDWATCH_KEY_ACTIONS) for st in statements(policy)):
            problems.append(f"{topic}: the policy of its key {key_id} does not let cloudwatch.amazonaws.com use it ({', '.join(CLOUDWATCH_KEY_ACTIONS)}): {len(alarms)} alarms could not publish")
    return problems, len(topics)


VENDED = "/aws/vendedlogs/"


def log_destinations(cfn):
    """(resource, what, destination value) of every API Gateway access log and state machine log."""
    for logical_id, resource in cfn["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::ApiGatewayV2::Stage" and "AccessLogSettings" in props:
            yield logical_id, "access log", props["AccessLogSettings"].get("DestinationArn")
        elif resource["Type"] == "AWS::ApiGateway::Stage" and "AccessLogSetting" in props:
            yield logical_id, "access log", props["AccessLogSetting"].get("DestinationArn")
        elif resource["Type"] == "AWS::StepFunctions::StateMachine":
            for destination in props.get("LoggingConfiguration", {}).get("Destinations", []):
                yield logical_id, "workflow log", destination.get("CloudWatchLogsLogGroup", {}).get("LogGroupArn")


def log_group_name(value, resources):
    """The name of the log group a destination points at, as written (a `Fn::Sub` text too)."""
    target = resolve(value, resources)
    if target is not None and resources[target]["Type"] == "AWS::Logs::LogGroup":
        name = resources[target].get("Properties", {}).get("LogGroupName")
    else:
        name = value
    if isinstance(name, dict) and "Fn::Sub" in name:
        sub = name["Fn::Sub"]
        name = sub[0] if isinstance(sub, list) else sub
    if isinstance(name, str) and name.startswith("arn:"):
        name = name.split(":log-group:", 1)[-1]
    return name if isinstance(name, str) else None


def log_problems(cfn):
    problems = []
    checked = 0
    for logical_id, what, destination in log_destinations(cfn):
        checked += 1
        name = log_group_name(destination, cfn["Resources"])
        if name is None:
            problems.append(f"{logical_id}: {what} destination {json.dumps(destination)} is not a log group of this template")
        elif not name.startswith(VENDED):
            problems.append(f"{logical_id}: {what} group {name} is not under {VENDED} (delivery can fail to enable once the account's log resource policy is full)")
    return problems, checked


def alarms(template):
    cfn, _, _, _ = translate(template, [], "us-east-1")
    problems, topics = alarm_problems(cfn)
    for problem in problems:
        print("alarms:", problem, file=sys.stderr)
    print(f"alarms: {topics} alarm topics checked, {len(problems)} problems")
    return 1 if problems or topics == 0 else 0


def logs(template):
    cfn, _, _, _ = translate(template, [], "us-east-1")
    problems, checked = log_problems(cfn)
    for problem in problems:
        print("logs:", problem, file=sys.stderr)
    print(f"logs: {checked} log destinations checked, {len(problems)} problems")
    return 1 if problems or checked == 0 else 0


def callback_budget(wait, visibility, max_receive_count, function_timeout, retry_max_delay, claim_hold, heartbeat_interval):
    """The least HeartbeatSeconds and TimeoutSeconds a callback step needs, in seconds.

    A callback step's heartbeat clock starts when its work message is SENT, and is reset only by
    the worker (SendTaskHeartbeat): on receiving a redelivery or a message that waited in its
    queue longer than `heartbeat_interval`, and every `heartbeat_interval` while it works
    (services/shared/src/driver.rs). Between two resets there can be, at worst:
    - a first delivery read just before `heartbeat_interval` (no heartbeat on receipt);
    - the delivery failing: the message is invisible until the visibility timeout (a crash) or
      the worker's backoff after its work (`function_timeout` + max(`retry_max_delay`,
      `claim_hold`)), whichever is longer;
    - then waiting again behind the backlog: up to `wait`, the queue-wait budget.
    So HeartbeatSeconds >= wait + away + heartbeat_interval, with away = max(visibility,
    function_timeout + max(retry_max_delay, claim_hold)). The whole step is at most
    `max_receive_count` times (wait + away) (the last delivery answers the token, success or
    failure), so TimeoutSeconds >= max_receive_count * (wait + away).
    """
    away = max(visibility, function_timeout + max(retry_max_delay, claim_hold))
    return wait + away + heartbeat_interval, max_receive_count * (wait + away)


def callback_problems(sam_text_or_path):
    """The rule applied to the template's defaults (what `sam deploy` uses unless overridden)."""
    from samtranslator.yaml_helper import yaml_parse
    with open(sam_text_or_path) as f:
        sam = yaml_parse(f.read())
    params = {k: v.get("Default") for k, v in sam.get("Parameters", {}).items()}
    glob = sam.get("Globals", {}).get("Function", {})
    env = glob.get("Environment", {}).get("Variables", {})
    problems = []
    try:
        need_heartbeat, need_timeout = callback_budget(
            wait=int(params["QueueWaitBudgetSeconds"]),
            visibility=int(params["QueueVisibilityTimeout"]),
            max_receive_count=int(params["WorkerMaxReceiveCount"]),
            function_timeout=int(glob["Timeout"]),
            retry_max_delay=int(env["RETRY_MAX_DELAY_SECONDS"]),
            claim_hold=int(env["IDEMPOTENCY_HOLD_SECONDS"]),
            heartbeat_interval=int(env["HEARTBEAT_INTERVAL_SECONDS"]),
        )
        heartbeat, timeout = int(params["CallbackHeartbeatSeconds"]), int(params["CallbackTimeoutSeconds"])
    except (KeyError, TypeError, ValueError) as e:
        return [f"the rule's inputs are not all in the template (parameters and Globals): {e!r}"], None
    if heartbeat < need_heartbeat:
        problems.append(f"CallbackHeartbeatSeconds {heartbeat} < {need_heartbeat}: a step whose message waits the whole QueueWaitBudgetSeconds times out before a worker reads it")
    if timeout < need_timeout:
        problems.append(f"CallbackTimeoutSeconds {timeout} < {need_timeout}: a step retried {params['WorkerMaxReceiveCount']} times behind a backlog times out")
    if timeout <= heartbeat:
        problems.append(f"CallbackTimeoutSeconds {timeout} <= CallbackHeartbeatSeconds {heartbeat}")
    return problems, (heartbeat, timeout, need_heartbeat, need_timeout)


def placeholder_problems(cfn, definitions):
    """Every callback step takes its seconds from the parameters, through DefinitionSubstitutions."""
    problems = []
    for logical_id, spec in definitions.items():
        subs = spec["substitutions"]
        for key in ("CallbackHeartbeatSeconds", "CallbackTimeoutSeconds"):
            if subs.get(key) != {"Ref": key}:
                problems.append(f"{logical_id}: DefinitionSubstitutions.{key} is not !Ref {key}")
        text = spec["text"]
        for key, field in (("CallbackHeartbeatSeconds", "HeartbeatSeconds"), ("CallbackTimeoutSeconds", "TimeoutSeconds")):
            written = re.findall(r'"' + field + r'"\s*:\s*([^,\n]+)', text)
            # A wait for a person (the refund approval: no worker, no queue-wait rule) is bounded
            # by the approval parameters instead, and has no heartbeat.
            person_waits = len(re.findall(r'"TimeoutSeconds"\s*:\s*\$\{Approval(Reminder|Final)Seconds\}', text))
            if field == "TimeoutSeconds":
                written = [w for w in written if not re.fullmatch(r"\$\{Approval(Reminder|Final)Seconds\}", w.strip())]
            tasks = text.count('.waitForTaskToken"') - person_waits
            if len([w for w in written if w.strip() == "${" + key + "}"]) != tasks or len(written) != tasks:
                problems.append(f"{logical_id}: not every callback step has \"{field}\": ${{{key}}} ({tasks} callback steps, {written})")
    return problems


def callbacks(template):
    cfn, _, definitions, _ = translate(template, [], "us-east-1")
    problems, figures = callback_problems(template)
    problems += placeholder_problems(cfn, definitions)
    for problem in problems:
        print("callbacks:", problem, file=sys.stderr)
    if figures:
        print(f"callbacks: HeartbeatSeconds {figures[0]} (rule: >= {figures[2]}), TimeoutSeconds {figures[1]} (rule: >= {figures[3]}), {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "iam" and len(sys.argv) == 3:
        sys.exit(iam(sys.argv[2]))
    if command in ("alarms", "logs", "callbacks") and len(sys.argv) == 3:
        sys.exit({"alarms": alarms, "logs": logs, "callbacks": callbacks}[command](sys.argv[2]))
    if command == "asl" and len(sys.argv) == 4:
        sys.exit(asl(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
