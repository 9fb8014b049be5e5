"""AWS's payload and shape limits, where the pinned moto is lenient: the local stack refuses what
AWS refuses, with the error code and shape AWS answers with. Each rule names its source.

`emulator.py` calls `install(lock)` once, with the lock its DynamoDB operations run under.

| service         | rule                                                         | AWS answer |
|-----------------|--------------------------------------------------------------|------------|
| Step Functions  | StartExecution `input` ≤ 262144 bytes (UTF-8)                | 400 ValidationException |
| Step Functions  | execution `name` 1–80 characters                             | 400 ValidationException |
| Step Functions  | execution `name` without whitespace, `<>{}[]?*"#%\\^|~`$&,;:/`, control characters | 400 InvalidName |
| Step Functions  | SendTaskSuccess `output` ≤ 262144 bytes; SendTaskFailure `error` ≤ 256, `cause` ≤ 32768 characters; `taskToken` 1–2048 | 400 ValidationException |
| EventBridge     | PutEvents ≤ 10 entries (moto checks this already)            | 400 ValidationException |
| EventBridge     | entry size (Time 14 + Source + DetailType + Detail + Resources, UTF-8) ≤ 1 MB | 400 ValidationException |
| EventBridge     | `Detail` is a JSON object                                    | per entry MalformedDetail |
| SQS             | message body + attributes ≤ 1 MiB, in UTF-8 bytes (moto counts characters) | 400 InvalidParameterValue |
| SQS             | SendMessageBatch: all bodies together ≤ 1 MiB, in bytes      | 400 BatchRequestTooLong |
| DynamoDB        | item ≤ 400 KB by AWS's size rules (names + values + list/map overhead), for PutItem, UpdateItem's result, transactions, batches | 400 ValidationException |
| DynamoDB        | numbers stored normalised; ≤ 38 significant digits; magnitude 1E-130 … 9.99…E+125 | 400 ValidationException |
"""

import copy
import functools
import io
import json
import re
import sys
from decimal import Context, Decimal, InvalidOperation

from moto.core.exceptions import JsonRESTError
from moto.dynamodb.exceptions import ItemSizeTooLarge, MockValidationException, SerializationException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.responses import DynamoHandler
from moto.events import models as events_models
from moto.events.models import EventsBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue
from moto.sqs.models import SQSBackend

# --- Step Functions ----------------------------------------------------------------------------
# API reference, StartExecution: "input … Length Constraints: Maximum length of 262144. Length
# constraints apply to the payload size, and are expressed as bytes in UTF-8 encoding."
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
# (also the quota "Maximum input or output size for a task, state, or execution: 256 KiB",
# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html)
SFN_PAYLOAD_MAX_BYTES = 262144
# StartExecution `name`: "Length Constraints: Minimum length of 1. Maximum length of 80." and
# "A name must not contain: white space; brackets < > { } [ ]; wildcard characters ? *; special
# characters " # % \ ^ | ~ ` $ & , ; : /; control characters (U+0000-001F, U+007F-009F,
# U+FFFE-FFFF); surrogates (U+D800-DFFF); invalid characters (U+10FFFF)" (API reference above).
SFN_NAME_MAX_CHARS = 80
_SFN_NAME_FORBIDDEN = re.compile(
    r'[\s<>{}\[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f\ufffe\uffff\ud800-\udfff\U0010ffff]'
)
# SendTaskSuccess `output`: maximum 262144 bytes; SendTaskFailure `error`: 0–256 characters,
# `cause`: 0–32768 characters; every `taskToken`: 1–2048 characters (API reference,
# SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat).
SFN_ERROR_MAX_CHARS = 256
SFN_CAUSE_MAX_CHARS = 32768
SFN_TOKEN_MAX_CHARS = 2048


def _constraint(field, limit, value=None):
    # The shape of AWS's request-validation errors (JSON protocols), e.g. "1 validation error
    # detected: Value 'xxx' at 'name' failed to satisfy constraint: Member must have length less
    # than or equal to 80" (the value is left out for payloads).
    shown = f"Value '{value}' at" if value is not None else "Value at"
    return (
        f"1 validation error detected: {shown} '{field}' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}"
    )


def _too_long(value, limit, unit_bytes=False):
    if not isinstance(value, str):
        return False
    size = len(value.encode("utf-8", "surrogatepass")) if unit_bytes else len(value)
    return size > limit


def _check_stepfunctions(action, body):
    """(code, message) of AWS's answer when the request breaks a limit, else None."""
    if action == "StartExecution":
        name = body.get("name")
        if isinstance(name, str):
            if len(name) < 1 or len(name) > SFN_NAME_MAX_CHARS:
                return "ValidationException", _constraint("name", SFN_NAME_MAX_CHARS, name[:200])
            if _SFN_NAME_FORBIDDEN.search(name):
                return "InvalidName", f"Invalid Name: '{name}'"
        if _too_long(body.get("input"), SFN_PAYLOAD_MAX_BYTES, unit_bytes=True):
            return "ValidationException", _constraint("input", SFN_PAYLOAD_MAX_BYTES)
    if action in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
        token = body.get("taskToken")
        if isinstance(token, str) and (len(token) < 1 or len(token) > SFN_TOKEN_MAX_CHARS):
            return "ValidationException", _constraint("taskToken", SFN_TOKEN_MAX_CHARS)
    if action == "SendTaskSuccess" and _too_long(body.get("output"), SFN_PAYLOAD_MAX_BYTES, unit_bytes=True):
        return "ValidationException", _constraint("output", SFN_PAYLOAD_MAX_BYTES)
    if action == "SendTaskFailure":
        if _too_long(body.get("error"), SFN_ERROR_MAX_CHARS):
            return "ValidationException", _constraint("error", SFN_ERROR_MAX_CHARS)
        if _too_long(body.get("cause"), SFN_CAUSE_MAX_CHARS):
            return "ValidationException", _constraint("cause", SFN_CAUSE_MAX_CHARS)
    return None


# --- EventBridge -------------------------------------------------------------------------------
# Entry size, "Calculating Amazon EventBridge PutEvents event entry size": Time (if given) 14
# bytes, Source and DetailType their UTF-8 bytes, Detail its UTF-8 bytes, each Resources entry
# its UTF-8 bytes. https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
# The limit is 1 MB since 2026-01-29 (256 KB before; EventBridge quotas,
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html). Over it, the whole call
# fails: ValidationException "Total size of the entries in the request is over the limit."
EVENTS_ENTRY_MAX_BYTES = 1024 * 1024
# PutEventsRequestEntry `Detail`: "A valid JSON object"; anything else is refused per entry with
# ErrorCode MalformedDetail, "Detail is malformed."
# https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html and
# API_PutEventsResultEntry.html (ErrorCode MalformedDetail: "The JSON provided is not valid.")


def events_entry_size(entry):
    """An entry's size as EventBridge counts it (see above)."""
    size = 14 if entry.get("Time") is not None else 0
    for field in ("Source", "DetailType", "Detail"):
        size += len((entry.get(field) or "").encode("utf-8", "surrogatepass"))
    for resource in entry.get("Resources") or []:
        size += len((resource or "").encode("utf-8", "surrogatepass"))
    return size


def _malformed_detail(entry):
    detail = entry.get("Detail")
    if not detail:
        return False  # moto answers a missing Detail itself (InvalidArgument), as AWS does.
    try:
        return not isinstance(json.loads(detail), dict)
    except (ValueError, RecursionError):
        # Nested deeper than even the raised recursion limit (emulator.py) reads: refused as
        # malformed, never an HTTP 500.
        return True


_put_events = EventsBackend.put_events


@functools.wraps(_put_events)
def _put_events_limited(self, events):
    if len(events) <= 10 and sum(events_entry_size(e) for e in events) > EVENTS_ENTRY_MAX_BYTES:
        raise events_models.ValidationException("Total size of the entries in the request is over the limit.")
    refused = {i for i, entry in enumerate(events) if len(events) <= 10 and _malformed_detail(entry)}
    accepted = _put_events(self, [e for i, e in enumerate(events) if i not in refused]) if len(refused) < len(events) else []
    if len(events) > 10:
        return accepted
    answers = iter(accepted)
    return [
        {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."} if i in refused else next(answers)
        for i in range(len(events))
    ]


# A rule's SQS target refusing the event (too large for SQS) does not fail PutEvents on AWS: the
# entry was accepted; the delivery fails and goes to the target's dead-letter queue, if it has one
# ("Using dead-letter queues to process undelivered events",
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html). moto would answer the
# whole PutEvents with HTTP 500.
_send_to_sqs = events_models.Rule._send_to_sqs_queue


@functools.wraps(_send_to_sqs)
def _send_to_sqs_or_dlq(self, resource_id, event, group_id=None):
    try:
        return _send_to_sqs(self, resource_id, event, group_id)
    except (InvalidParameterValue, BatchRequestTooLong) as refused:
        from moto.sqs import sqs_backends

        for target in self.targets:
            if target["Arn"].rsplit(":", 1)[-1] != resource_id:
                continue
            dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
            print(f"limits: event {event.get('id')} not delivered to {resource_id}: {refused.message}; dead-letter queue {dlq}", file=sys.stderr)
            if dlq:
                try:
                    sqs_backends[self.account_id][self.region_name].send_message(
                        queue_name=dlq.rsplit(":", 1)[-1],
                        message_body=json.dumps(event),
                        message_attributes={
                            "ERROR_CODE": {"DataType": "String", "StringValue": "SQS_QUEUE_MESSAGE_TOO_LARGE"},
                            "RULE_ARN": {"DataType": "String", "StringValue": self.arn},
                            "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
                        },
                    )
                except (InvalidParameterValue, BatchRequestTooLong):
                    pass  # Too large for the dead-letter queue too: AWS drops it (FailedInvocations).


# --- SQS ---------------------------------------------------------------------------------------
# SendMessage `MessageBody`: "The maximum size is 1 MiB or 1,048,576 bytes" (since 2025-08-04),
# and "The message size includes the message body and attributes" (each attribute's name, type
# and value). https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
# SendMessageBatch: "The maximum allowed individual message size and the maximum total payload
# size (the sum of the individual lengths of all of the batched messages) are both 1 MiB".
# moto checks both, but in characters, not bytes.
SQS_MESSAGE_MAX_BYTES = 1_048_576


def sqs_message_size(body, attributes=None):
    size = len((body or "").encode("utf-8", "surrogatepass"))
    for name, value in (attributes or {}).items():
        size += len(name.encode()) + len((value.get("DataType") or "").encode())
        string = value.get("StringValue")
        if string is not None:
            size += len(str(string).encode("utf-8", "surrogatepass"))
        binary = value.get("BinaryValue")
        if binary is not None:
            size += len(binary)
    return size


def _queue_limit(backend, queue_name):
    try:
        return min(int(backend.get_queue(queue_name).maximum_message_size), SQS_MESSAGE_MAX_BYTES)
    except Exception:
        return SQS_MESSAGE_MAX_BYTES


_send_message = SQSBackend.send_message


@functools.wraps(_send_message)
def _send_message_limited(self, queue_name, message_body, message_attributes=None, *args, **kwargs):
    limit = _queue_limit(self, queue_name)
    if sqs_message_size(message_body, message_attributes) > limit:
        raise InvalidParameterValue(f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")
    return _send_message(self, queue_name, message_body, message_attributes, *args, **kwargs)


_send_message_batch = SQSBackend.send_message_batch


@functools.wraps(_send_message_batch)
def _send_message_batch_limited(self, queue_name, entries):
    total = sum(sqs_message_size(e.get("MessageBody"), e.get("MessageAttributes")) for e in entries.values())
    if total > SQS_MESSAGE_MAX_BYTES:
        raise BatchRequestTooLong(total)
    return _send_message_batch(self, queue_name, entries)


# --- DynamoDB numbers --------------------------------------------------------------------------
# "Numbers can be positive, negative, or zero. Numbers can have up to 38 digits of precision.
# Exceeding this results in an exception. Positive range: 1E-130 to 9.9999999999999999999999999999999999999E+125;
# negative range: -9.99…E+125 to -1E-130. Leading and trailing zeroes are trimmed."
# (Supported data types and naming rules, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html)
# DynamoDB keeps the number, not its spelling: `1250.00` is stored and returned as `1250`, `0012`
# as `12`, `1.5E3` as `1500`. moto keeps the spelling, so a number written one way and compared
# or keyed another would differ only here.
# Exact arithmetic for normalising: the default context would round to 28 digits.
_EXACT = Context(prec=1000)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def normalise_number(text):
    """DynamoDB's canonical form of a number given as text, or ValidationException."""
    if not isinstance(text, str) or not _NUMBER.match(text.strip()):
        raise MockValidationException(f"The parameter cannot be converted to a numeric value: {text}")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise MockValidationException(f"The parameter cannot be converted to a numeric value: {text}")
    if value.is_zero():
        return "0"
    value = value.normalize(_EXACT)
    digits = len(value.as_tuple().digits)
    if digits > 38:
        raise MockValidationException("Attempting to store more than 38 significant digits in a Number")
    if value.adjusted() > 125:
        raise MockValidationException("Number overflow. Attempting to store a number with magnitude larger than supported range")
    if value.adjusted() < -130:
        raise MockValidationException("Number underflow. Attempting to store a number with magnitude smaller than supported range")
    return format(value, "f")


# Numbers are stored in plain notation (above), so 1E+40 is stored with 41 digits, one of them
# significant. moto's projection path (a GetItem or Query with a ProjectionExpression) converts
# the item through boto3's TypeDeserializer, whose context (38 digits of precision) traps
# `Rounded`: dropping those trailing zeros, exact, raised and the request failed with HTTP 500.
# Only `Inexact` (a digit actually lost) is trapped here; the stored numbers never have more than
# 38 significant digits, so no value changes.
import boto3.dynamodb.types as _boto3_dynamodb_types  # noqa: E402
from decimal import Rounded as _Rounded  # noqa: E402

_boto3_dynamodb_types.DYNAMODB_CONTEXT.traps[_Rounded] = False

_dynamo_type_init = DynamoType.__init__


@functools.wraps(_dynamo_type_init)
def _dynamo_type_init_normalised(self, type_as_dict):
    _dynamo_type_init(self, type_as_dict)
    if self.type == "N" and isinstance(self.value, str):
        self.value = normalise_number(self.value)
    elif self.type == "NS" and isinstance(self.value, list):
        self.value = [normalise_number(v) if isinstance(v, str) else v for v in self.value]


# --- DynamoDB item size ------------------------------------------------------------------------
# "The maximum item size in DynamoDB is 400 KB, which includes both attribute name binary length
# (UTF-8 length) and attribute value lengths (again binary length)."
# (Quotas, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html)
# How an item's size is counted ("DynamoDB item sizes and formats",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
# strings their UTF-8 bytes; numbers 1 byte per two significant digits + 1; binary its raw bytes;
# null and Boolean 1 byte; a List or Map 3 bytes + its elements + 1 byte per element (a map's
# element counts its name too); a set the sum of its elements; plus each attribute's name.
# Over it: ValidationException "Item size has exceeded the maximum allowed size" (PutItem, a
# transaction) or "Item size to update has exceeded the maximum allowed size" (UpdateItem).
DYNAMODB_ITEM_MAX_BYTES = 400 * 1024


def _number_size(text):
    digits = Decimal(text).normalize(_EXACT).as_tuple().digits if text not in ("0", "-0") else (0,)
    return (len(digits) + 1) // 2 + 1


def _binary_size(value):
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    try:
        import base64

        return len(base64.b64decode(value))
    except Exception:
        return len(str(value))


def attribute_size(value):
    """The size of one attribute value (a DynamoType or its JSON form), by AWS's rules."""
    value = value if isinstance(value, DynamoType) else DynamoType(value)
    kind, v = value.type, value.value
    if kind == "S":
        if not isinstance(v, str):
            # A string member that is not a string (boto3 without parameter validation): refused
            # as moto's own type check does further on, with a 400, not a crash here (HTTP 500).
            if isinstance(v, (bool, int, float)):
                raise SerializationException("NUMBER_VALUE cannot be converted to String")
            raise SerializationException("Start of structure or map found where not expected")
        return len(v.encode("utf-8", "surrogatepass"))
    if kind == "N":
        return _number_size(v)
    if kind == "B":
        return _binary_size(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8", "surrogatepass")) for s in v)
    if kind == "NS":
        return sum(_number_size(n) for n in v)
    if kind == "BS":
        return sum(_binary_size(b) for b in v)
    if kind == "L":
        return 3 + sum(attribute_size(e) + 1 for e in v)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8", "surrogatepass")) + attribute_size(e) + 1 for k, e in v.items())
    return len(str(v))


def _not_a_string(value):
    """SerializationException's message for a JSON value where a string belongs (as `attribute_size`
    words it for a string member)."""
    if isinstance(value, (bool, int, float)):
        return "NUMBER_VALUE cannot be converted to String"
    if isinstance(value, list):
        return "Start of list found where not expected"
    if value is None:
        return "Unexpected null value where a String belongs"
    return "Start of structure or map found where not expected"


def check_attribute_names(params):
    """Every `ExpressionAttributeNames` in a DynamoDB request (top level; in each action of
    TransactWriteItems and TransactGetItems; per table of BatchGetItem, the places the API has
    one) is a map of strings to strings, as DynamoDB's JSON protocol requires (a
    `SerializationException`, HTTP 400, otherwise: the API types it `map<String, String>`,
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html).
    moto takes any JSON there: a number as a name made its executor store an attribute named
    by that number, which the item size check here then failed on, every later request on the
    table answering HTTP 500 until the emulator restarted."""
    if not isinstance(params, dict):
        return
    places = [params]
    for action in params.get("TransactItems") or []:
        places.extend(v for v in (action.values() if isinstance(action, dict) else []) if isinstance(v, dict))
    requests = params.get("RequestItems")
    if isinstance(requests, dict):
        places.extend(v for v in requests.values() if isinstance(v, dict))
    for place in places:
        if "ExpressionAttributeNames" not in place:
            continue
        names = place["ExpressionAttributeNames"]
        if not isinstance(names, dict):  # (moto's parser refuses most of these first, see below)
            raise SerializationException(_not_a_string(names))
        for name in names.values():
            if not isinstance(name, str):
                raise SerializationException(_not_a_string(name))


def item_size(attrs):
    """The size of an item (attribute name → DynamoType or JSON form), by AWS's rules."""
    return sum(len(name.encode("utf-8", "surrogatepass")) + attribute_size(value) for name, value in attrs.items())


def install(lock):
    """Applies every rule above to moto's backends; `lock` is the one DynamoDB operations hold."""

    # Step Functions and the PutEvents count are checked on the request, where every client's
    # call arrives (the state machines' own SendMessage calls do not pass here, and need not).
    dispatch = DomainDispatcherApplication.__call__

    @functools.wraps(dispatch)
    def checked(app, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("AWSStepFunctions."):
            return dispatch(app, environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return dispatch(app, environ, start_response)
        refused = _check_stepfunctions(target.split(".", 1)[1], body if isinstance(body, dict) else {})
        if refused is None:
            return dispatch(app, environ, start_response)
        code, message = refused
        payload = json.dumps({"__type": code, "message": message}).encode()
        start_response(
            "400 Bad Request",
            [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(payload))), ("x-amzn-ErrorType", code)],
        )
        return [payload]

    DomainDispatcherApplication.__call__ = checked

    EventsBackend.put_events = _put_events_limited
    events_models.Rule._send_to_sqs_queue = _send_to_sqs_or_dlq
    SQSBackend.send_message = _send_message_limited
    SQSBackend.send_message_batch = _send_message_batch_limited

    call_action = DynamoHandler.call_action

    @functools.wraps(call_action)
    def call_action_checked(handler):
        check_attribute_names(getattr(handler, "params", None))
        return call_action(handler)

    DynamoHandler.call_action = call_action_checked

    # A request whose JSON does not have the operation's shapes (a list where a map belongs, a
    # string where a structure does) is a SerializationException (HTTP 400) on DynamoDB; moto's
    # parser fails on it with an AttributeError or TypeError, answered as HTTP 500.
    parse_parameters = DynamoHandler.parse_parameters

    @functools.wraps(parse_parameters)
    def parse_parameters_checked(handler, request):
        try:
            return parse_parameters(handler, request)
        except (AttributeError, TypeError) as error:
            raise SerializationException("Unexpected value type in the request's JSON for its operation") from error

    DynamoHandler.parse_parameters = parse_parameters_checked

    DynamoType.__init__ = _dynamo_type_init_normalised
    # moto's own size check (its own counting, a 405000-byte limit, top-level attributes only)
    # gives way to AWS's, applied to whole items below.
    LimitedSizeDict.__setitem__ = dict.__setitem__

    put_item = DynamoDBBackend.put_item

    @functools.wraps(put_item)
    def put_item_limited(self, table_name, item_attrs, *args, **kwargs):
        if item_size(item_attrs) > DYNAMODB_ITEM_MAX_BYTES:
            raise ItemSizeTooLarge()
        return put_item(self, table_name, item_attrs, *args, **kwargs)

    DynamoDBBackend.put_item = put_item_limited

    execute = UpdateExpressionExecutor.execute

    @functools.wraps(execute)
    def execute_limited(self, node=None):
        # The update is applied to the stored item in place: keep the item as it was, and put it
        # back when the result is too large (moto then answers ItemSizeToUpdateTooLarge). Once,
        # around the whole update: moto's executor calls `execute` again for each node of the
        # expression, and a check there put back only that node's action, leaving the actions
        # before it applied to a refused update (AWS applies none of a refused update's actions).
        if node is not None:
            return execute(self, node)
        before = copy.deepcopy(dict(self.item.attrs))
        try:
            result = execute(self)
            too_large = item_size(self.item.attrs) > DYNAMODB_ITEM_MAX_BYTES
        except BaseException:
            # Whatever failed on the way (moto's own errors, or an item this check cannot size)
            # leaves the item as it was: AWS applies none of a failed update's actions.
            self.item.attrs.clear()
            self.item.attrs.update(before)
            raise
        if too_large:
            self.item.attrs.clear()
            self.item.attrs.update(before)
            raise ItemSizeTooLarge()
        return result

    UpdateExpressionExecutor.execute = execute_limited

    update_item = DynamoDBBackend.update_item

    @functools.wraps(update_item)
    def update_item_limited(self, table_name, key, *args, **kwargs):
        # An UpdateItem of a new item that ends too large must leave no item behind (moto
        # creates the key-only item before applying the update), and nothing in the table's
        # stream: moto's put of the key-only item and the delete here each add a record, for a
        # write DynamoDB never made.
        with lock:
            existed, stream = True, None
            try:
                table = self.get_table(table_name)
                existed = table.get_item(*self.get_keys_value(table, key)) is not None
                stream = len(table.stream_shard.items) if table.stream_shard is not None else None
            except Exception:
                pass
            try:
                return update_item(self, table_name, key, *args, **kwargs)
            except MockValidationException as refused:
                if not existed and "maximum allowed size" in str(refused.message):
                    try:
                        table = self.get_table(table_name)
                        hash_value, range_value = self.get_keys_value(table, key)
                        table.delete_item(hash_value, range_value)
                        if stream is not None and table.stream_shard is not None:
                            del table.stream_shard.items[stream:]
                    except Exception:
                        pass
                raise

    DynamoDBBackend.update_item = update_item_limited
