#!/usr/bin/env python3
"""Deploys infra/template.yaml onto a running moto server, the way `sam deploy` would on AWS.

Called by `taskflow up`; prints one JSON document on stdout that tells the local host what to run:
the stack outputs, each function (binary, environment, timeout) and each event source mapping.

Steps (see ../shared/notes/local-emulator.md for why each workaround exists):
1. aws-sam-translator turns the SAM template into plain CloudFormation, offline.
2. Lambda functions, event source mappings and permissions are taken out: the local host runs the
   real function binaries and feeds them itself (moto's own mappings would eat the messages).
   Every value they need from the stack (queue ARNs, table names, ...) becomes a stack output,
   so CloudFormation on moto resolves it exactly as it resolves everything else.
3. create_stack on moto.
4. The state machine is (re)created through the Step Functions API with DefinitionSubstitutions
   applied, because moto ignores them and hides stack-made machines once real execution is on.
5. Each function's and each workflow's identity is registered with the emulator (see iam.py):
   an access key of its own and its role's policy documents with every intrinsic resolved to
   the real ARNs, so the emulator checks every call the function makes against its role.
   (moto's own IAM objects for CloudFormation-made roles are not usable for this: see
   ../shared/notes/local-emulator.md.) `--remove-grant` takes actions out of a role first, for
   the tests that prove a missing grant is refused.
6. Each bucket's `NotificationConfiguration` is applied with PutBucketNotificationConfiguration:
   moto's CloudFormation ignores the property, but moto delivers S3 event notifications to SQS
   once the bucket has them (moto/s3/notifications.py), as S3 does.
"""

import argparse
import copy
import json
import re
import sys
import time

import boto3
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

LAMBDA_TYPES = {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Permission"}
# CloudWatch watches AWS's own metrics of the functions (which run in the local host, not in the
# emulator) and the emulator does not implement it: these are checked by cfn-lint, not deployed.
# Logs Insights query definitions likewise (the emulator implements none in CloudFormation).
MONITORING_TYPES = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard", "AWS::Logs::QueryDefinition"}
# The HTTP API and its user pool: the local host plays API Gateway (its JWT authorizer with a key
# of its own, served as a JWKS), and the emulator implements neither in CloudFormation.
GATEWAY_PREFIXES = ("AWS::ApiGatewayV2::", "AWS::Cognito::")
# Email (Notifier ses): the emulator implements no SES resource in CloudFormation. The local
# stack creates the sender identity and the configuration set through the SES v2 API instead
# (`local_email`), where moto verifies an identity at once; on AWS its owner clicks a link first.
EMAIL_TYPES = {"AWS::SES::EmailIdentity", "AWS::SES::ConfigurationSet", "AWS::SES::ConfigurationSetEventDestination"}
# CloudWatch Transaction Search (the `aws/spans` log group behind the X-Ray OTLP endpoint) is one
# setting per account that the emulator does not implement: the local OTLP endpoint
# (infra/taskflow/src/otlp.rs) stores spans in the emulator's X-Ray instead. Checked by cfn-lint,
# not deployed. (The logs resource policy that goes with it is deployed: moto keeps it.)
TRACING_TYPES = {"AWS::XRay::TransactionSearchConfig"}
PLACEHOLDER_CODE = "s3://taskflow-local-placeholder/bootstrap.zip"


def log(*args):
    print("deploy:", *args, file=sys.stderr, flush=True)


class Resolver:
    """Collects intrinsic values to be resolved by CloudFormation as extra stack outputs."""

    def __init__(self):
        self.outputs = {}

    def want(self, value):
        """A plain value stays as it is; an intrinsic becomes a reference to an output."""
        if isinstance(value, (str, int, float, bool)) or value is None:
            return {"literal": value}
        name = f"LocalResolve{len(self.outputs)}"
        self.outputs[name] = {"Value": value}
        return {"output": name}

    @staticmethod
    def read(ref, outputs):
        if "literal" in ref:
            value = ref["literal"]
            return value if isinstance(value, str) or value is None else str(value)
        return outputs[ref["output"]]


def credentials(logical_id):
    """The local access key of a function's or workflow's identity: one per logical id, so the
    emulator knows who signs each request (the secret is not checked)."""
    return {"accessKeyId": "ASIALOCAL" + re.sub(r"[^A-Z0-9]", "", logical_id.upper()), "secretAccessKey": "local-" + logical_id}


def _mentions(value, logical_id):
    """Whether a template value refers to `logical_id` (Ref, GetAtt or Sub)."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return (target[0] if isinstance(target, list) else target.split(".")[0]) == logical_id
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text = sub[0] if isinstance(sub, list) else sub
            return any(m.split(".")[0] == logical_id for m in re.findall(r"\$\{([^}!]+)\}", text))
        return any(_mentions(v, logical_id) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, logical_id) for v in value)
    return False


def remove_grants(resources, grants):
    """Takes actions out of roles: each grant is `ROLE:ACTION` (the action from every statement
    of the role) or `ROLE:ACTION:RESOURCE` (only on the resources that refer to that logical
    id; the statement keeps the action on its other resources)."""
    for grant in grants:
        role, service, name, *target = grant.split(":")  # the action is service:Name
        action = f"{service}:{name}"
        target = ":".join(target) if target else None
        resource = resources.get(role)
        if not resource or resource["Type"] != "AWS::IAM::Role":
            raise SystemExit(f"--remove-grant {grant}: no role {role} in the template")
        removed = 0
        for policy in resource["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            statements = statements if isinstance(statements, list) else [statements]
            kept = []
            for statement in statements:
                actions = statement.get("Action", [])
                actions = actions if isinstance(actions, list) else [actions]
                matching = [a for a in actions if a.lower() == action.lower()]
                if statement.get("Effect") != "Allow" or not matching:
                    kept.append(statement)
                    continue
                targets = statement.get("Resource", [])
                targets = targets if isinstance(targets, list) else [targets]
                hit = [r for r in targets if target is None or _mentions(r, target)]
                if not hit:
                    kept.append(statement)
                    continue
                removed += 1
                rest = [a for a in actions if a not in matching]
                if rest:
                    kept.append({**statement, "Action": rest})
                others = [r for r in targets if r not in hit]
                if others:
                    kept.append({**statement, "Action": matching, "Resource": others})
            policy["PolicyDocument"]["Statement"] = kept
        if not removed:
            raise SystemExit(f"--remove-grant {grant}: role {role} grants no such action")
        log(f"removed {action} from {role}" + (f" on {target}" if target else ""))


def _role_of(value):
    """The logical id of the role in `Role: !GetAtt X.Arn`, or None."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else target.split(".")[0]
    return None


def _want_tree(resolver, value):
    """A policy document with each intrinsic replaced by a reference to a stack output."""
    if isinstance(value, dict):
        if len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::")):
            return {"__resolve": resolver.want(value)}
        return {k: _want_tree(resolver, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_want_tree(resolver, v) for v in value]
    return value


def _read_tree(value, outputs):
    if isinstance(value, dict):
        if set(value) == {"__resolve"}:
            return Resolver.read(value["__resolve"], outputs)
        return {k: _read_tree(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_read_tree(v, outputs) for v in value]
    return value


def plan_identity(resolver, resources, owner, role_ref, name, kind):
    """What to register for `owner` (a function or workflow) running as the role `role_ref`."""
    role_id = _role_of(role_ref)
    role = resources.get(role_id, {})
    if role.get("Type") != "AWS::IAM::Role":
        raise SystemExit(f"{owner}: its role is not an AWS::IAM::Role of the template ({role_ref})")
    if role["Properties"].get("ManagedPolicyArns"):
        # Their documents are AWS's, not in the template: the local check cannot read them.
        raise SystemExit(f"{role_id}: managed policies cannot be checked locally; write the statements inline")
    return {
        "logicalId": owner,
        "kind": kind,
        "name": name,
        "roleArn": resolver.want({"Fn::GetAtt": [role_id, "Arn"]}),
        "policies": [_want_tree(resolver, p["PolicyDocument"]) for p in role["Properties"].get("Policies", [])],
        **credentials(owner),
    }


def register_identities(identities, outputs, endpoint):
    import urllib.request

    resolved = [
        {**i, "name": Resolver.read(i["name"], outputs), "roleArn": Resolver.read(i["roleArn"], outputs), "policies": _read_tree(i["policies"], outputs)}
        for i in identities
    ]
    request = urllib.request.Request(
        f"{endpoint}/taskflow/iam/identities",
        data=json.dumps({"identities": resolved}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    log(f"{answer['registered']} identities registered with the emulator (IAM mode {answer['mode']})")
    return resolved


def translate(template_path, parameters, region):
    with open(template_path) as f:
        sam = yaml_parse(f.read())
    base = template_path.rsplit("/", 1)[0] if "/" in template_path else "."
    binaries = {}
    definitions = {}
    routes = []
    for logical_id, resource in sam.get("Resources", {}).items():
        props = resource.setdefault("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            binaries[logical_id] = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary", logical_id)
            for event in props.get("Events", {}).values():
                if event.get("Type") == "HttpApi":
                    routes.append({"function": logical_id, "method": event["Properties"]["Method"].upper(), "path": event["Properties"]["Path"]})
            props["CodeUri"] = PLACEHOLDER_CODE
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            with open(f"{base}/{props.pop('DefinitionUri')}") as f:
                definitions[logical_id] = {
                    "text": f.read(),
                    "substitutions": props.pop("DefinitionSubstitutions", {}),
                    "name": props.get("Name"),
                }
            # A stand-in: the real definition is created after the stack, substituted.
            props["Definition"] = {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
    if "Globals" in sam and "Function" in sam["Globals"]:
        sam["Globals"]["Function"]["CodeUri"] = PLACEHOLDER_CODE
    session = boto3.session.Session(region_name=region)
    try:
        cfn = Translator(None, Parser(), boto_session=session).translate(
            sam, parameter_values=dict(parameters), get_managed_policy_map=lambda: {}
        )
    except InvalidDocumentException as e:
        raise SystemExit("template is not valid SAM: " + "; ".join(str(c) for c in e.causes))
    return cfn, binaries, definitions, routes


def plan_local(cfn, binaries, definitions):
    """Takes the Lambda parts out of the template and lists what to resolve for the host."""
    resolver = Resolver()
    resources = cfn["Resources"]
    functions, mappings, machines, identities, schedules = [], [], [], [], []
    notifications = []
    lambda_ids = {k for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    scheduled_rules = []
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in props:
            notifications.append({"bucket": resolver.want({"Ref": logical_id}), "configuration": _want_tree(resolver, props.pop("NotificationConfiguration"))})
        if resource["Type"] == "AWS::Lambda::Function":
            env = props.get("Environment", {}).get("Variables", {})
            functions.append({
                "logicalId": logical_id,
                "binary": binaries.get(logical_id, logical_id),
                "name": resolver.want(props.get("FunctionName", logical_id)),
                "timeout": props.get("Timeout", 3),
                "memorySize": props.get("MemorySize", 128),
                "environment": {k: resolver.want(v) for k, v in env.items()},
                **credentials(logical_id),
            })
            identities.append(plan_identity(resolver, resources, logical_id, props.get("Role"), functions[-1]["name"], "function"))
        elif resource["Type"] == "AWS::Lambda::EventSourceMapping":
            function_ref = props["FunctionName"]
            on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            mappings.append({
                "function": function_ref["Ref"] if isinstance(function_ref, dict) else function_ref,
                "sourceArn": resolver.want(props["EventSourceArn"]),
                "batchSize": props.get("BatchSize", 10),
                "reportBatchItemFailures": "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                "startingPosition": props.get("StartingPosition"),
                "maximumRetryAttempts": props.get("MaximumRetryAttempts", -1),
                "bisectBatchOnFunctionError": bool(props.get("BisectBatchOnFunctionError", False)),
                "onFailureArn": resolver.want(on_failure) if on_failure else None,
            })
        elif resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in props:
            # A function's `Schedule` event (SAM: a rule with a rate and the function as target):
            # the emulator runs no schedules and the function is not in it, so the local host
            # invokes the function on this rate itself (taskflow up; tests trigger it at once).
            for target in props.get("Targets", []):
                arn = target.get("Arn", {})
                function = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
                if function in lambda_ids:
                    schedules.append({"rule": logical_id, "function": function, "expression": resolver.want(props["ScheduleExpression"])})
                    scheduled_rules.append(logical_id)
        elif resource["Type"] == "AWS::StepFunctions::StateMachine" and logical_id in definitions:
            spec = definitions[logical_id]
            machines.append({
                "logicalId": logical_id,
                "name": resolver.want(spec["name"] or logical_id),
                "roleArn": resolver.want(props["RoleArn"]),
                "definition": spec["text"],
                "substitutions": {k: resolver.want(v) for k, v in spec["substitutions"].items()},
            })
            identities.append(plan_identity(resolver, resources, logical_id, props["RoleArn"], machines[-1]["name"], "stateMachine"))
    for logical_id in [k for k, r in resources.items() if r["Type"] in LAMBDA_TYPES | MONITORING_TYPES | EMAIL_TYPES | TRACING_TYPES or r["Type"].startswith(GATEWAY_PREFIXES)] + scheduled_rules:
        del resources[logical_id]
    known = set(resources) | set(cfn.get("Parameters", {}))
    for name in [k for k, o in cfn.get("Outputs", {}).items() if refers_to_missing(o, known)]:
        del cfn["Outputs"][name]
    cfn.setdefault("Outputs", {}).update(resolver.outputs)
    return functions, mappings, machines, identities, notifications, schedules


def apply_notifications(notifications, outputs, endpoint, region):
    """A bucket's CloudFormation `NotificationConfiguration` as PutBucketNotificationConfiguration
    (the API spells it differently: AWS::S3::Bucket NotificationConfiguration / QueueConfiguration
    in the CloudFormation user guide; PutBucketNotificationConfiguration in the S3 API reference)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    for n in notifications:
        bucket = Resolver.read(n["bucket"], outputs)
        config = _read_tree(n["configuration"], outputs)
        queues = []
        for q in config.get("QueueConfigurations", []):
            entry = {"QueueArn": q["Queue"], "Events": [q["Event"]]}
            rules = q.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
            queues.append(entry)
        if set(config) - {"QueueConfigurations"}:
            raise SystemExit(f"{bucket}: only QueueConfigurations are applied locally, not {sorted(set(config) - {'QueueConfigurations'})}")
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues})
        log(f"bucket {bucket}: {len(queues)} event notifications to SQS")


def refers_to_missing(value, known):
    """Whether a template value refers (Ref / GetAtt) to a resource or parameter not in `known`."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            return not value["Ref"].startswith("AWS::") and value["Ref"] not in known
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return (target[0] if isinstance(target, list) else target.split(".")[0]) not in known
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
            names = {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            missing = {n for n in names if not n.startswith("AWS::") and n not in known and n not in variables}
            return bool(missing) or refers_to_missing(variables, known)
        return any(refers_to_missing(v, known) for v in value.values())
    if isinstance(value, list):
        return any(refers_to_missing(v, known) for v in value)
    return False


def create_stack(cfn, stack_name, parameters, endpoint, region):
    client = boto3.client("cloudformation", endpoint_url=endpoint, region_name=region)
    client.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 60
    while True:
        stack = client.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if status.endswith("FAILED") or "ROLLBACK" in status or time.time() > deadline:
            events = client.describe_stack_events(StackName=stack_name)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if "FAILED" in e["ResourceStatus"]]
            raise SystemExit(f"stack {stack_name} ended {status}: {reasons}")
        time.sleep(0.1)


def local_user_pools(cfn, parameters, endpoint, region):
    """The template's Cognito user pools, created in the emulator through the API (its
    CloudFormation implements none), and every `Ref` / `Fn::GetAtt …Arn` of them replaced by the
    created pool's id / ARN: the notification function finds owners' addresses there (users are
    made with `aws cognito-idp admin-create-user`; the local HTTP API keeps its own token issuer)."""
    client = boto3.client("cognito-idp", endpoint_url=endpoint, region_name=region)
    pools = {}
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Cognito::UserPool":
            props = resource.get("Properties", {})
            name = props.get("UserPoolName")
            if isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str):
                name = name["Fn::Sub"].replace("${Stage}", dict(parameters).get("Stage", "local"))
            name = name if isinstance(name, str) else f"local-{logical_id}"
            pool = client.create_user_pool(
                PoolName=name,
                UsernameAttributes=props.get("UsernameAttributes", []),
                AutoVerifiedAttributes=props.get("AutoVerifiedAttributes", []),
            )["UserPool"]
            pools[logical_id] = pool

    def replace(value):
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in pools:
                return pools[value["Ref"]]["Id"]
            if set(value) == {"Fn::GetAtt"}:
                target = value["Fn::GetAtt"]
                target = target if isinstance(target, list) else target.split(".", 1)
                if target[0] in pools and target[1] == "Arn":
                    return pools[target[0]]["Arn"]
            return {k: replace(v) for k, v in value.items()}
        if isinstance(value, list):
            return [replace(v) for v in value]
        return value

    for logical_id, resource in list(cfn["Resources"].items()):
        if logical_id not in pools:
            cfn["Resources"][logical_id] = replace(resource)
    cfn["Outputs"] = replace(cfn.get("Outputs", {}))
    return pools


def local_email(parameters, endpoint, region):
    """With `Notifier=ses`: the sender identity and the configuration set the template declares,
    made through the SES v2 API (moto marks an identity verified at once; SES sends from no
    other, as on AWS: moto answers `MessageRejected`, "Email address not verified")."""
    values = dict(parameters)
    if values.get("Notifier") != "ses":
        return
    sender = values.get("SenderAddress", "")
    if not sender:
        raise SystemExit("Notifier=ses needs SenderAddress (the template's rule SesNeedsASender)")
    ses = boto3.client("sesv2", endpoint_url=endpoint, region_name=region)
    name = f"taskflow-{values.get('Stage', 'local')}-notices"
    ses.create_configuration_set(ConfigurationSetName=name, SuppressionOptions={"SuppressedReasons": ["BOUNCE", "COMPLAINT"]})
    ses.create_email_identity(EmailIdentity=sender, ConfigurationSetName=name)


def create_state_machine(machine, outputs, endpoint, region):
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name=region)
    values = {k: Resolver.read(v, outputs) for k, v in machine["substitutions"].items()}

    def substitute(match):
        key = match.group(1)
        if key not in values:
            raise SystemExit(f"state machine {machine['logicalId']}: no substitution for ${{{key}}}")
        return values[key]

    definition = re.sub(r"\$\{([A-Za-z0-9_]+)\}", substitute, machine["definition"])
    json.loads(definition)  # a broken substitution must fail here, not at the first execution
    name = Resolver.read(machine["name"], outputs)
    role = Resolver.read(machine["roleArn"], outputs)
    try:
        return sfn.create_state_machine(name=name, definition=definition, roleArn=role, type="STANDARD")["stateMachineArn"]
    except sfn.exceptions.StateMachineAlreadyExists:
        arn = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name)
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
        return arn


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--template", required=True)
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--parameter", action="append", default=[], help="Key=Value")
    parser.add_argument("--remove-grant", action="append", default=[], help="ROLE:ACTION[:RESOURCE_LOGICAL_ID], to prove a missing grant is refused")
    args = parser.parse_args()
    parameters = [tuple(p.split("=", 1)) for p in args.parameter]

    started = time.time()
    cfn, binaries, definitions, routes = translate(args.template, parameters, args.region)
    remove_grants(cfn["Resources"], args.remove_grant)
    local_user_pools(cfn, parameters, args.endpoint, args.region)
    local_email(parameters, args.endpoint, args.region)
    functions, mappings, machines, identities, notifications, schedules = plan_local(cfn, binaries, definitions)
    outputs = create_stack(cfn, args.stack_name, parameters, args.endpoint, args.region)
    apply_notifications(notifications, outputs, args.endpoint, args.region)
    # Before any state machine runs or any function starts: from here on they are checked.
    identities = register_identities(identities, outputs, args.endpoint)
    machine_arns = {m["logicalId"]: create_state_machine(m, outputs, args.endpoint, args.region) for m in machines}

    for f in functions:
        f["name"] = Resolver.read(f["name"], outputs)
        f["environment"] = {k: Resolver.read(v, outputs) for k, v in f["environment"].items()}
    for m in mappings:
        m["sourceArn"] = Resolver.read(m["sourceArn"], outputs)
        m["onFailureArn"] = Resolver.read(m["onFailureArn"], outputs) if m["onFailureArn"] else None
    for sched in schedules:
        sched["expression"] = Resolver.read(sched["expression"], outputs)
    stack_outputs = {k: v for k, v in outputs.items() if not k.startswith("LocalResolve")}
    log(f"stack {args.stack_name} deployed in {time.time() - started:.1f}s: {len(functions)} functions, {len(mappings)} event sources")
    json.dump({
        "stackName": args.stack_name,
        "outputs": stack_outputs,
        "stateMachines": machine_arns,
        "functions": functions,
        "eventSources": mappings,
        "httpRoutes": routes,
        "schedules": schedules,
        "identities": [{k: v for k, v in i.items() if k != "secretAccessKey"} for i in identities],
    }, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
