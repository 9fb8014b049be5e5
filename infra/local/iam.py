"""IAM for the local stack: every request signed with a registered identity's access key is
checked against that identity's policies, as AWS checks a call against the caller's role.

The deploy step (`deploy.py`) registers one identity per function (its execution role's policy
documents, every intrinsic resolved to a real ARN) and one per workflow role, with
`POST /taskflow/iam/identities`. Requests signed with any other key (the CLI, tests as outside
clients, the deploy step, the seeding, the local X-Ray daemon: all `test`) are the account's
admin and are not checked. Requests signed with no key at all (anonymous) are refused in enforce
mode, as AWS refuses them (see "Anonymous requests" below).

Each request is mapped to the IAM actions and resource ARNs AWS authorises it as (below, per
service, with the source of each rule), then evaluated with moto's policy evaluator
(`moto.iam.access_control.IAMPolicy`: `*` wildcards in actions and resources, an explicit Deny
wins, otherwise an Allow is needed). A request is allowed only if every (action, resource) pair it
needs is allowed. What is denied gets the service's own AccessDenied error, naming the principal,
the action and the resource as AWS does, and is written to the denial log
(`GET /taskflow/iam/denials`, `DELETE` to read and clear) and the emulator's log.

Mode, from the environment variable `TASKFLOW_IAM`: `enforce` (default) answers AccessDenied;
`record` lets the request through but logs the denial (for diagnosis); `off` checks nothing.

What this cannot do (README "What the local stack enforces like AWS, and what it cannot"):
conditions in identity policies are not evaluated (moto's evaluator treats them as unmet: a
statement with a Condition never allows here); resource-based policies (queue, bucket, key
policies), permission boundaries, SCPs and session policies are not read; the X-Ray daemon
runs as admin (the local OTLP endpoint does not: it has its callers' requests checked here); a request this module cannot map is denied in `enforce` mode (it is named in the
denial log so a mapping can be added).
"""

import json
import os
import re
import sys
import threading
import time
import urllib.parse

from moto.iam.access_control import IAMPolicy, PermissionResult

ACCOUNT = "123456789012"

MODE = os.environ.get("TASKFLOW_IAM", "enforce")
if MODE not in ("enforce", "record", "off"):
    raise SystemExit(f"TASKFLOW_IAM must be enforce, record or off, not {MODE!r}")

_lock = threading.Lock()
_identities = {}  # access key id -> identity
_by_role = {}  # role ARN -> access key id (the workflows' roles)
_denials = []
MAX_DENIALS = 10_000


class Identity:
    def __init__(self, spec):
        self.access_key_id = spec["accessKeyId"]
        # Checked only on presigned S3 URLs (presigned.py), whose signature is all S3 has.
        self.secret_access_key = spec.get("secretAccessKey")
        self.name = spec["name"]
        # "function" (a Lambda function) or "stateMachine" (a workflow's execution role).
        self.kind = spec.get("kind", "function")
        self.role_arn = spec["roleArn"]
        role_name = self.role_arn.rsplit("/", 1)[-1]
        # Lambda's and Step Functions' sessions of the role: assumed-role/ROLE/SESSION.
        self.principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{spec.get('session', self.name)}"
        # IAM action names are case-insensitive (IAM User Guide, "IAM JSON policy elements:
        # Action"): both sides are compared in lower case.
        self.policies = [IAMPolicy(json.dumps(_lower_actions(doc))) for doc in spec["policies"]]

    def allows(self, action, resource):
        """AWS's evaluation within one account without resource policies: an explicit Deny
        wins, then any Allow, else the implicit deny (IAM User Guide, "Policy evaluation
        logic")."""
        permitted = False
        for policy in self.policies:
            result = policy.is_action_permitted(action.lower(), resource)
            if result == PermissionResult.DENIED:
                return False
            permitted = permitted or result == PermissionResult.PERMITTED
        return permitted


def _lower_actions(doc):
    doc = json.loads(json.dumps(doc))
    statements = doc.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        for key in ("Action", "NotAction"):
            if isinstance(statement.get(key), str):
                statement[key] = statement[key].lower()
            elif isinstance(statement.get(key), list):
                statement[key] = [a.lower() for a in statement[key]]
    return doc


def register(body):
    specs = json.loads(body or b"{}").get("identities", [])
    with _lock:
        for spec in specs:
            identity = Identity(spec)
            _identities[identity.access_key_id] = identity
            _by_role[identity.role_arn] = identity.access_key_id
    log(f"iam: {len(specs)} identities registered, mode {MODE}")
    return {"registered": len(specs), "mode": MODE}


# The keys outside the stack use (the CLI, tests, the deploy step): the account's admin.
ADMIN_KEYS = {"test": "test"}


def secret_for(access_key_id):
    """The secret of a registered identity or of the admin key, or None for an unknown key."""
    with _lock:
        identity = _identities.get(access_key_id)
    if identity is not None:
        return identity.secret_access_key
    return ADMIN_KEYS.get(access_key_id)


def access_key_for_role(role_arn):
    with _lock:
        return _by_role.get(role_arn)


def denials(clear=False):
    with _lock:
        out = list(_denials)
        if clear:
            _denials.clear()
    return out


def log(line):
    print(line, file=sys.stderr, flush=True)


# --- Who is calling -------------------------------------------------------------------------

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")


def caller(environ):
    """(access key id, region, signing service) of a SigV4-signed request, or None."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1), match.group(2), match.group(3)
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    credential = query.get("X-Amz-Credential", [""])[0].split("/")
    if len(credential) >= 4:
        return credential[0], credential[2], credential[3]
    return None


def identity_of(environ):
    found = caller(environ)
    if not found or MODE == "off":
        return None, None
    with _lock:
        identity = _identities.get(found[0])
    return identity, found


# --- What the request needs -----------------------------------------------------------------

def _table_arn(region, name):
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"


def _queue_arn(region, url):
    parts = urllib.parse.urlparse(url).path.strip("/").split("/")
    account, name = (parts[-2], parts[-1]) if len(parts) >= 2 else (ACCOUNT, parts[-1])
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _bus_arn(region, name):
    name = name or "default"
    return name if name.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{name}"


def dynamodb(op, body, region):
    """DynamoDB: each operation is its own action on the table ARN; a Query or Scan of an index
    is on `table/T/index/I`. BatchGetItem / BatchWriteItem are checked per table. In
    TransactWriteItems / TransactGetItems each item is authorised by its underlying action
    (Put → PutItem, Update → UpdateItem, Delete → DeleteItem, ConditionCheck →
    ConditionCheckItem, Get → GetItem) on its own table. Sources: Service Authorization Reference,
    "Actions, resources, and condition keys for Amazon DynamoDB"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html);
    DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html)."""
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{op}", _table_arn(region, t)) for t in body.get("RequestItems", {})]
    if op in ("TransactWriteItems", "TransactGetItems"):
        names = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        needs = []
        for item in body.get("TransactItems", []):
            for kind, spec in item.items():
                needs.append((f"dynamodb:{names.get(kind, kind)}", _table_arn(region, spec.get("TableName", ""))))
        return needs
    table = body.get("TableName")
    if not table:
        return [(f"dynamodb:{op}", "*")]  # ListTables and the like take no resource
    arn = _table_arn(region, table)
    if body.get("IndexName") and op in ("Query", "Scan"):
        arn = f"{arn}/index/{body['IndexName']}"
    return [(f"dynamodb:{op}", arn)]


def dynamodb_streams(op, body, region):
    """DynamoDB Streams: DescribeStream, GetShardIterator and GetRecords are actions on the
    stream ARN (`table/T/stream/LABEL`) (Service Authorization Reference, Amazon DynamoDB;
    DynamoDB Developer Guide, "IAM policy to allow an AWS Lambda function to access DynamoDB
    stream records"). ListStreams names no stream and is checked on `*` here; nothing local
    calls it. GetRecords names only its shard iterator: moto's iterators begin with the stream
    ARN, up to the first `|`."""
    if op == "GetRecords":
        return [("dynamodb:GetRecords", body.get("ShardIterator", "").split("|")[0])]
    if body.get("StreamArn"):
        return [(f"dynamodb:{op}", body["StreamArn"])]
    return [(f"dynamodb:{op}", "*")]


def _token_state_machine(token, region):
    """The state machine ARN of the running execution that issued `token`, or None."""
    try:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT][region]
    except Exception:
        return None
    # Newest executions first: a token is answered soon after its task starts.
    for machine in list(backend.state_machines):
        for execution in reversed(list(machine.executions)):
            pool = getattr(getattr(getattr(execution, "exec_worker", None), "env", None), "callback_pool_manager", None)
            if pool is not None and pool.get(token) is not None:
                return machine.arn
    return None


def states(op, body, region):
    """Step Functions: StartExecution and the state machine operations are actions on the
    `stateMachine` ARN; execution operations on the `execution` ARN; SendTaskSuccess /
    SendTaskFailure / SendTaskHeartbeat on the state machine (or activity) whose task issued
    the token. Source: Service Authorization Reference, "Actions, resources, and condition keys
    for AWS Step Functions"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html)."""
    if op in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
        machine = _token_state_machine(body.get("taskToken", ""), region)
        # A token no running execution knows: Step Functions answers InvalidToken; the
        # authorisation cannot name a machine, so the check is against any of the account's.
        return [(f"states:{op}", machine or f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:*")]
    for key in ("stateMachineArn", "executionArn", "activityArn", "mapRunArn"):
        if body.get(key):
            return [(f"states:{op}", body[key])]
    return [(f"states:{op}", "*")]


def events(op, body, region):
    """EventBridge: PutEvents is checked per entry on the `event-bus` ARN of its EventBusName
    (name or ARN; absent: the default bus); rule operations on the `rule` ARN
    (`rule/[BUS/]NAME`). Source: Service Authorization Reference, "Actions, resources, and
    condition keys for Amazon EventBridge"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html)."""
    if op == "PutEvents":
        buses = {_bus_arn(region, e.get("EventBusName")) for e in body.get("Entries", [])}
        return [("events:PutEvents", b) for b in sorted(buses)] or [("events:PutEvents", _bus_arn(region, None))]
    rule = body.get("Rule") or (body.get("Name") if op in ("PutRule", "DeleteRule", "DescribeRule", "EnableRule", "DisableRule") else None)
    if rule:
        bus = body.get("EventBusName")
        bus = bus.rsplit("/", 1)[-1] if bus else None
        path = f"rule/{bus}/{rule}" if bus and bus != "default" else f"rule/{rule}"
        return [(f"events:{op}", f"arn:aws:events:{region}:{ACCOUNT}:{path}")]
    if body.get("EventBusName") or (op.endswith("EventBus") and body.get("Name")):
        return [(f"events:{op}", _bus_arn(region, body.get("EventBusName") or body.get("Name")))]
    return [(f"events:{op}", "*")]


# SendMessageBatch, DeleteMessageBatch and ChangeMessageVisibilityBatch are authorised by their
# single-message actions (Service Authorization Reference, "Actions, resources, and condition
# keys for Amazon SQS": https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsqs.html).
_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage", "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def sqs(op, params, region):
    """SQS: every queue operation is an action on the queue ARN (from QueueUrl, or QueueName for
    GetQueueUrl); ListQueues takes no resource. Source: as `_SQS_BATCH`."""
    action = f"sqs:{_SQS_BATCH.get(op, op)}"
    if params.get("QueueUrl"):
        return [(action, _queue_arn(region, params["QueueUrl"]))]
    if params.get("QueueName"):
        account = params.get("QueueOwnerAWSAccountId") or ACCOUNT
        return [(action, f"arn:aws:sqs:{region}:{account}:{params['QueueName']}")]
    return [(action, "*")]


def s3(environ):
    """S3 REST (path style, as the local clients use it): object reads (GET, HEAD) are
    s3:GetObject, writes s3:PutObject, deletes s3:DeleteObject, on `arn:aws:s3:::BUCKET/KEY`;
    listing a bucket is s3:ListBucket on the bucket ARN. Source: Service Authorization Reference,
    "Actions, resources, and condition keys for Amazon S3"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html)."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = urllib.parse.unquote(environ.get("PATH_INFO", "/")).lstrip("/")
    bucket, _, key = path.partition("/")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if not bucket:
        return [("s3:ListAllMyBuckets", "*")]
    if key:
        arn = f"arn:aws:s3:::{bucket}/{key}"
        if "tagging" in query:
            return [({"GET": "s3:GetObjectTagging", "PUT": "s3:PutObjectTagging", "DELETE": "s3:DeleteObjectTagging"}.get(method, "s3:?"), arn)]
        if method in ("GET", "HEAD"):
            return [("s3:GetObject", arn)]
        if method == "PUT":
            needs = [("s3:PutObject", arn)]
            source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
            if source:
                needs.append(("s3:GetObject", "arn:aws:s3:::" + urllib.parse.unquote(source).lstrip("/").split("?")[0]))
            return needs
        if method == "DELETE":
            return [("s3:DeleteObject", arn)]
        if method == "POST":
            return [("s3:PutObject", arn)]  # multipart upload steps
        return None
    arn = f"arn:aws:s3:::{bucket}"
    if method in ("GET", "HEAD") and not (set(query) - {"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "encoding-type", "marker"}):
        return [("s3:ListBucket", arn)]
    if method == "POST" and "delete" in query:
        return [("s3:DeleteObject", f"{arn}/*")]
    return None


def cognito_idp(op, params, region):
    """Cognito user pools (JSON protocol): every user-pool operation is an action on the pool ARN
    `arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID`. Source: Service Authorization Reference,
    "Actions, resources, and condition keys for Amazon Cognito User Pools"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncognitouserpools.html)."""
    pool = params.get("UserPoolId")
    return [(f"cognito-idp:{op}", f"arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{pool}" if pool else "*")]


def ses(environ, region, body):
    """Amazon SES API v2 (REST): SendEmail (`POST /v2/email/outbound-emails`) is `ses:SendEmail`
    on the sending identity (`FromEmailAddressIdentityArn`, else the identity of the From
    address) and, when one is named, on the configuration set. Source: Service Authorization
    Reference, "Actions, resources, and condition keys for Amazon SES"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsimpleemailservicev2.html)
    and the SES developer guide, "Controlling access to Amazon SES"."""
    from email.utils import parseaddr

    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
    if method == "POST" and path.rstrip("/") == "/v2/email/outbound-emails":
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        identity = params.get("FromEmailAddressIdentityArn") or f"arn:aws:ses:{region}:{ACCOUNT}:identity/{parseaddr(params.get('FromEmailAddress', ''))[1]}"
        needs = [("ses:SendEmail", identity)]
        if params.get("ConfigurationSetName"):
            needs.append(("ses:SendEmail", f"arn:aws:ses:{region}:{ACCOUNT}:configuration-set/{params['ConfigurationSetName']}"))
        return needs
    return None


# X-Ray's REST paths and their actions; none takes a resource ARN (Service Authorization
# Reference, "Actions, resources, and condition keys for AWS X-Ray":
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html).
_XRAY = {
    "/TraceSegments": "xray:PutTraceSegments",
    "/TelemetryRecords": "xray:PutTelemetryRecords",
    "/GetSamplingRules": "xray:GetSamplingRules",
    "/SamplingTargets": "xray:GetSamplingTargets",
    "/TraceSummaries": "xray:GetTraceSummaries",
    "/Traces": "xray:BatchGetTraces",
    # The OTLP endpoint (https://xray.<region>.amazonaws.com/v1/traces, SigV4 service `xray`):
    # `xray:PutSpans` (CloudWatch user guide, "OTLP endpoints"; Service Authorization
    # Reference, AWS X-Ray). Indexing spans as trace summaries (`xray:PutSpansForIndexing`) is
    # X-Ray's own step, not the caller's, and is not checked here.
    "/v1/traces": "xray:PutSpans",
}


def needs(environ, service, region, body):
    """The (action, resource) pairs a request needs, or None when it cannot be mapped."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    prefix, _, op = target.partition(".")
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        if prefix == "DynamoDB_20120810":
            return dynamodb(op, params, region)
        if prefix == "DynamoDBStreams_20120810":
            return dynamodb_streams(op, params, region)
        if prefix == "AWSStepFunctions":
            return states(op, params, region)
        if prefix == "AWSEvents":
            return events(op, params, region)
        if prefix == "AmazonSQS":
            return sqs(op, params, region)
        if prefix == "AWSCognitoIdentityProviderService":
            return cognito_idp(op, params, region)
        return None
    if service == "s3":
        return s3(environ)
    if service == "ses":
        return ses(environ, region, body)
    if service == "xray":
        action = _XRAY.get(environ.get("PATH_INFO", ""))
        return [(action, "*")] if action else None
    if service in ("sqs", "sts"):
        # The query protocol: Action and its parameters in the form body (or the query string).
        params = {k: v[0] for k, v in urllib.parse.parse_qs((body or b"").decode("utf-8", "replace")).items()}
        params.update({k: v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()})
        op = params.get("Action")
        if not op:
            return None
        if service == "sts":
            # GetCallerIdentity needs no permission (STS API Reference, GetCallerIdentity).
            return [] if op == "GetCallerIdentity" else [(f"sts:{op}", "*")]
        if "QueueUrl" not in params and environ.get("PATH_INFO", "/").count("/") >= 2:
            params["QueueUrl"] = environ["PATH_INFO"]
        return sqs(op, params, region)
    return None


# --- The answer -----------------------------------------------------------------------------

def denied(environ, start_response, identity, service, action, resource, target):
    """The service's own AccessDenied, with AWS's message."""
    if resource == "*" or action is None:
        message = f"User: {identity.principal} is not authorized to perform: {action}"
    else:
        message = f"User: {identity.principal} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
    request_id = f"iam-{int(time.time() * 1000)}"
    if target:  # the JSON protocols
        error = "AccessDenied" if target.startswith("AmazonSQS") else "AccessDeniedException"
        body = json.dumps({"__type": f"com.amazon.coral.service#{error}", "message": message, "Message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id)]
        if target.startswith("AmazonSQS"):
            headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
        status = "400 Bad Request"
    elif service == "xray":
        body = json.dumps({"message": message}).encode()
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException"), ("x-amzn-RequestId", request_id)]
        status = "403 Forbidden"
    else:  # S3 and the query protocols
        from xml.sax.saxutils import escape

        if service == "s3":
            xml = f"<Error><Code>AccessDenied</Code><Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        else:
            xml = f'<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>'
        body = ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()
        headers = [("Content-Type", "application/xml"), ("x-amzn-RequestId", request_id)]
        status = "403 Forbidden"
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


# --- Anonymous requests ----------------------------------------------------------------------
# AWS authenticates every request to a private resource: a request that carries neither a SigV4
# `Authorization` header nor presigned query parameters is anonymous, and is refused — S3 answers
# 403 AccessDenied for a private bucket (S3 user guide, "Making requests": "anonymous requests
# ... fail" unless a bucket policy or ACL grants public access; the task bucket blocks all public
# access); the JSON and query protocols answer MissingAuthenticationToken(Exception) (AWS general
# reference, "Signing AWS API requests"; e.g. DynamoDB API reference, "Common errors"). moto
# serves them all. In enforce mode they are refused here, except what AWS itself serves without
# signature or what is not AWS at all:
# - the emulator's own control routes (`/moto-api/…`, `/taskflow/…`: not AWS APIs);
# - a user pool's JWKS (`/{poolId}/.well-known/jwks.json` is public on AWS, Cognito developer
#   guide, "Verifying a JSON Web Token");
# - Cognito user pools' unauthenticated operations (InitiateAuth, SignUp, …: the Cognito API
#   reference lists them as not signed, "Using the Amazon Cognito user pools API and user pool
#   endpoints");
# - CORS preflights (`OPTIONS`: S3 answers them from the bucket's CORS configuration, unsigned).

_PUBLIC_PREFIXES = ("/moto-api/", "/taskflow/")
_COGNITO_UNAUTHENTICATED = {
    "InitiateAuth", "RespondToAuthChallenge", "SignUp", "ConfirmSignUp", "ForgotPassword",
    "ConfirmForgotPassword", "ResendConfirmationCode", "GetUser", "GlobalSignOut", "RevokeToken",
    "ChangePassword", "AssociateSoftwareToken", "VerifySoftwareToken", "GetUserAttributeVerificationCode",
    "VerifyUserAttribute", "UpdateUserAttributes", "DeleteUser", "SetUserMFAPreference",
}


def signed(environ):
    """True if the request carries a SigV4 signature (header or presigned query)."""
    if environ.get("HTTP_AUTHORIZATION", "").startswith("AWS4-HMAC-SHA256"):
        return True
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    return bool(query.get("X-Amz-Signature", [""])[0])


def anonymous_allowed(environ):
    path = environ.get("PATH_INFO", "/")
    if path.startswith(_PUBLIC_PREFIXES) or path == "/moto-api" or path.endswith("/.well-known/jwks.json"):
        return True
    if environ.get("REQUEST_METHOD") == "OPTIONS":
        return True
    prefix, _, op = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
    return prefix == "AWSCognitoIdentityProviderService" and op in _COGNITO_UNAUTHENTICATED


def anonymous_denied(environ, start_response):
    """AWS's answer to an anonymous request (see above), its body read first."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    request_id = f"iam-{int(time.time() * 1000)}"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    content_type = environ.get("CONTENT_TYPE", "")
    if target:
        message = "Request is missing Authentication Token"
        out = json.dumps({"__type": "com.amazon.coral.service#MissingAuthenticationTokenException", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id)]
        status = "400 Bad Request"
    elif content_type.startswith("application/x-www-form-urlencoded") and b"Action=" in body:
        out = (
            '<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>'
            f"<Message>Request is missing Authentication Token</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-amzn-RequestId", request_id)]
        status = "403 Forbidden"
    elif environ.get("PATH_INFO") == "/v1/traces":
        out = json.dumps({"message": "Missing Authentication Token"}).encode()
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "MissingAuthenticationTokenException"), ("x-amzn-RequestId", request_id)]
        status = "403 Forbidden"
    else:  # S3
        out = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>{request_id}</RequestId></Error>'.encode()
        headers = [("Content-Type", "application/xml"), ("x-amzn-RequestId", request_id)]
        status = "403 Forbidden"
    headers.append(("Content-Length", str(len(out))))
    start_response(status, headers)
    return [out]


def _anonymous(environ, start_response, dispatch):
    # Logged (the emulator's log), not in the denial log: that one lists what a role of the
    # stack was not granted; an anonymous caller has no role.
    log(f"iam: {'DENIED' if MODE == 'enforce' else 'would deny (record mode)'}: anonymous (unsigned) {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}")
    if MODE != "enforce":
        return dispatch(environ, start_response)
    return anonymous_denied(environ, start_response)


def check(environ, start_response, dispatch):
    """Checks one WSGI request; answers AccessDenied or passes it to `dispatch`."""
    if MODE != "off" and not signed(environ) and not anonymous_allowed(environ):
        return _anonymous(environ, start_response, dispatch)
    identity, found = identity_of(environ)
    if identity is None:
        return dispatch(environ, start_response)
    _, region, service = found
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    body = b""
    if target or service in ("sqs", "sts", "ses") or (service == "xray"):
        # Read the body for the mapping, and put it back for moto.
        import io

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
    required = needs(environ, service, region, body)
    if required is None:
        refusal = (f"{service}:{target or environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}", "(not mapped by infra/local/iam.py)")
        refused = [refusal]
    else:
        refused = [(a, r) for a, r in required if not identity.allows(a, r)]
    if not refused:
        return dispatch(environ, start_response)
    action, resource = refused[0]
    entry = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        identity.kind: identity.name,
        "principal": identity.principal,
        "action": action,
        "resource": resource,
        "enforced": MODE == "enforce",
    }
    with _lock:
        if len(_denials) < MAX_DENIALS:
            _denials.append(entry)
    log(f"iam: {'DENIED' if MODE == 'enforce' else 'would deny (record mode)'}: {identity.kind} {identity.name} ({identity.principal}) {action} on {resource}")
    if MODE != "enforce":
        return dispatch(environ, start_response)
    return denied(environ, start_response, identity, service, action, resource, target)
