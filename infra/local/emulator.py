"""The local AWS emulator: the pinned moto server, with DynamoDB made atomic and IAM checked.

moto serves requests on many threads but its DynamoDB backend has no lock. A cancelled
TransactWriteItems rolls back by putting back a copy of every table it touched, taken when it
started, so every write other requests made to those tables in between is lost. Under load (a
repeated reservation cancels while other orders reserve the same sku) stock decrements vanish.
DynamoDB itself never loses a committed write, so the emulator must not either: every DynamoDB
operation here runs under one lock, which is what makes a transaction (and a read-modify-write
update) atomic and isolated, as on AWS. Everything else is moto as installed.

It also counts what AWS would bill for (`GET /taskflow/usage`, `DELETE` to read and reset):
SQS requests, DynamoDB read/write request units, EventBridge events, S3 puts and X-Ray traces;
and Step Functions API calls by throttling bucket (`states.StartExecution`, `states.SendTask*`).
The counts are taken in moto's backends, so calls that Step Functions integrations and
EventBridge targets make inside the emulator count as they do on AWS. `make bench` builds its
cost model on them. Apart from them, `GET /taskflow/cpu` gives the emulator's own CPU per
operation (each request's thread CPU), which `BENCH_ONLY=steady` prints per order.

It checks every call a function or workflow makes against that caller's role, as AWS does
(`iam.py`: identities registered by deploy.py at `POST /taskflow/iam/identities`, refusals at
`GET /taskflow/iam/denials`; `TASKFLOW_IAM=enforce|record|off`).
It refuses what AWS refuses where moto is lenient: payload sizes, execution names, event
details, DynamoDB item sizes and numbers (`limits.py`, each rule with its source), presigned
S3 URLs that are expired or do not match their signature (`presigned.py`), anonymous (unsigned)
requests in IAM enforce mode (`iam.py`), and OTLP span writes whose SigV4 signature does not
verify (`sigv4.py`, for the local OTLP endpoint's `POST /v1/traces`).

Run as `python emulator.py -H 127.0.0.1 -p PORT`; the arguments are moto_server's.
"""

import collections
import copy
import functools
import gc
import html
import json
import math
import os
import sys
import threading
import time
from urllib.parse import parse_qs

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import EventsBackend
from moto.moto_server.werkzeug_app import SIGNING_ALIASES as _SIGNING_ALIASES
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import S3Backend
from moto.server import main
from moto.sqs.models import SQSBackend
from moto.xray.models import XRayBackend

import iam
import sigv4

# EventBridge takes event details nested a thousand levels deep and more; CPython's json stops at
# its recursion limit (1000 frames) with a RecursionError, which moto would answer with HTTP 500.
# Deeper JSON is read here as on AWS (taskflow's intake then rejects it by name); the request
# threads get the stack that needs.
sys.setrecursionlimit(20_000)
threading.stack_size(64 * 1024 * 1024)

_LOCK = threading.RLock()

# Every operation that reads or writes items: writes so that none is lost, reads so that none
# sees a transaction half applied.
_ATOMIC = [
    "put_item", "get_item", "update_item", "delete_item", "query", "scan",
    "transact_write_items", "transact_get_items", "batch_get_item", "batch_write_item",
    "execute_statement", "execute_transaction", "batch_execute_statement",
]


def _under(lock, method):
    """`method`, run holding `lock`."""

    @functools.wraps(method)
    def locked(*args, **kwargs):
        with lock:
            return method(*args, **kwargs)

    return locked


for _name in _ATOMIC:
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _under(_LOCK, getattr(DynamoDBBackend, _name)))

# EventBridge: moto's PutEvents walks a bus's rules while PutRule, PutTargets and the rest change
# them, with no lock, so a PutEvents made while a rule is added failed mid-delivery with HTTP 500
# ("OrderedDict mutated during iteration"), after some targets had the event: the caller's retry
# then delivered it twice. AWS answers both. Rules and buses are read and changed one call at a
# time here (a PutEvents's deliveries go to other backends directly, not over HTTP, so nothing
# waits on a request that needs this lock).
_EVENTS_LOCK = threading.RLock()
_EVENTS_ATOMIC = [
    "put_rule", "delete_rule", "describe_rule", "disable_rule", "enable_rule", "list_rule_names_by_target",
    "list_rules", "list_targets_by_rule", "put_targets", "remove_targets", "put_events", "create_event_bus",
    "describe_event_bus", "list_event_buses", "delete_event_bus", "put_permission", "remove_permission",
]

for _name in _EVENTS_ATOMIC:
    if hasattr(EventsBackend, _name):
        setattr(EventsBackend, _name, _under(_EVENTS_LOCK, getattr(EventsBackend, _name)))


# --- What AWS would bill -----------------------------------------------------------------------

_USAGE_LOCK = threading.Lock()
_usage = collections.Counter()
_traces = set()


_nesting = threading.local()


def _count(key, amount=1):
    with _USAGE_LOCK:
        _usage[key] += amount


def _outermost(scope):
    """Decorates `method(counted, ...)`: counted is False when called from inside another
    counted operation of the same service (moto's batches and transactions call its own single
    operations): one request is counted once."""

    def decorate(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            depth = getattr(_nesting, scope, 0)
            setattr(_nesting, scope, depth + 1)
            try:
                return method(depth == 0, *args, **kwargs)
            finally:
                setattr(_nesting, scope, depth)

        return call

    return decorate


def _counted(cls, name, key):
    """Counts one billed request per call of `cls.name` (failed calls are billed too)."""
    method = getattr(cls, name)
    scope = key.split(".")[0]

    @_outermost(scope)
    def counting(counted, self, *args, **kwargs):
        if counted:
            _count(key)
        return method(self, *args, **kwargs)

    setattr(cls, name, counting)


for _name, _key in [
    ("send_message", "sqs.SendMessage"),
    ("send_message_batch", "sqs.SendMessageBatch"),
    ("delete_message", "sqs.DeleteMessage"),
    ("delete_message_batch", "sqs.DeleteMessageBatch"),
    ("change_message_visibility", "sqs.ChangeMessageVisibility"),
    ("change_message_visibility_batch", "sqs.ChangeMessageVisibilityBatch"),
]:
    _counted(SQSBackend, _name, _key)

_receive = SQSBackend.receive_message


@_outermost("sqs")
def _receive_counted(counted, self, *args, **kwargs):
    messages = _receive(self, *args, **kwargs)
    if not counted:
        return messages
    # Empty polls are what a poller costs per queue whatever the traffic; kept apart.
    _count("sqs.ReceiveMessage" if messages else "sqs.ReceiveMessage.empty")
    return messages


SQSBackend.receive_message = _receive_counted


_WRITE_LOG = os.environ.get("TASKFLOW_WRITE_LOG")


def _dynamodb(kind, table, units, what=""):
    """Request units, in total and per table (so the sandbox payment provider's can be told apart).
    With `TASKFLOW_WRITE_LOG` set (a file), each count is appended to it as a line (for finding
    where an order's units go)."""
    _count(f"dynamodb.{kind}", units)
    _count(f"dynamodb.{kind}.{table}", units)
    if _WRITE_LOG and kind == "WriteRequestUnits":
        with _USAGE_LOCK, open(_WRITE_LOG, "a") as log:
            log.write(f"{table}\t{what}\t{units}\n")


def _table(args, kwargs):
    return kwargs.get("table_name", args[0] if args else "?")


def _units(size, unit):
    return max(1, math.ceil(size / unit))


# --- DynamoDB write units, by AWS's rules --------------------------------------------------------
# A write to an item costs one unit per started KB of the item: for a put or update the larger of
# the item before and after, for a delete the item deleted; a write refused by its condition
# still costs the size of the item that is there (1 if none)
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html#write-operation-consumption;
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
# A global secondary index is written only when the write touches it
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes):
# one write when the item enters the index (it now has the index's key attributes), one when it
# leaves it, two (delete the old entry, put the new) when an index key attribute changes value,
# one when only an attribute projected into the index changes (ALL: any attribute; KEYS_ONLY:
# none besides the keys; INCLUDE: the listed ones), none otherwise; each costs one unit per
# started KB of the index entry (the projected attributes).


def _index_entries(backend, table_name, item):
    """Per global secondary index of the table: (index key values, projected entry) of `item`,
    or None when the item is not in that index."""
    try:
        table = backend.get_table(table_name)
    except Exception:
        return {}
    entries = {}
    for index in table.global_indexes or []:
        if item is None or not all(k in item.attrs for k in index.schema_key_attrs):
            entries[index.name] = None
            continue
        projected = _projected(index, item)
        keys = json.dumps([item.attrs[k].to_json() for k in index.schema_key_attrs], sort_keys=True)
        entry = json.dumps({name: value.to_json() for name, value in projected.items()}, sort_keys=True)
        entries[index.name] = (keys, entry, sum(bytesize(name) + value.size() for name, value in projected.items()))
    return entries


def _projected(index, item):
    """The attributes of `item` that `index`'s entry holds, by name: the table's and the index's
    key attributes, with INCLUDE its NonKeyAttributes too (top-level names, as AWS takes them),
    with ALL (or no projection, as moto reads it) every attribute. What moto's
    `SecondaryIndex.project` keeps, taken by name instead of converting the whole item to plain
    JSON and back once per kept name (which made every counted write of a task with its history
    cost a few milliseconds)."""
    projection = (index.projection or {}).get("ProjectionType")
    if projection not in ("KEYS_ONLY", "INCLUDE"):
        return item.attrs
    names = index.table_key_attrs + index.schema_key_attrs
    if projection == "INCLUDE":
        names = names + list(index.projection.get("NonKeyAttributes", []))
    return {name: item.attrs[name] for name in names if name in item.attrs}


def _index_writes(before, after):
    """Index write units of a write that took the item's index entries from `before` to `after`
    (as `_index_entries` gives them)."""
    units = 0
    for name in set(before) | set(after):
        old, new = before.get(name), after.get(name)
        if old is None and new is None:
            continue
        if old is None:
            units += _units(new[2], 1024)  # enters the index
        elif new is None:
            units += _units(old[2], 1024)  # leaves it
        elif old[0] != new[0]:
            units += _units(old[2], 1024) + _units(new[2], 1024)  # key changed: delete + put
        elif old[1] != new[1]:
            units += _units(new[2], 1024)  # a projected attribute changed
    return units


def _key_of(backend, table_name, attrs):
    table = backend.get_table(table_name)
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


class _Snapshot:
    """What the counting needs of a stored item at one moment: its size, its index entries
    (`_index_entries`) and, for the write log only, its attributes. Taken instead of a deep copy
    of the item (moto updates items in place), which cost ~7 % of the server's CPU under load."""

    __slots__ = ("_size", "entries", "attributes")

    def __init__(self, backend, table_name, item):
        self._size = item.size()
        self.entries = _index_entries(backend, table_name, item)
        self.attributes = item.to_json()["Attributes"] if _WRITE_LOG else None

    def size(self):
        return self._size


def _stored(backend, table_name, key):
    """A `_Snapshot` of the item stored under `key` now (None if there is none), read without
    counting a read: AWS bills the write only."""
    try:
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        item = table.get_item(hash_key, range_key)
        return _Snapshot(backend, table_name, item) if item is not None else None
    except Exception:
        return None


def _entries_of(backend, table_name, snapshot):
    """The index entries of a `_Snapshot` (or of no item, for None)."""
    return snapshot.entries if snapshot is not None else _index_entries(backend, table_name, None)


def _write_units(backend, table_name, before, after, entries_before):
    """Units of a write that changed the item from `before` to `after` (snapshots; either may be
    None)."""
    size = max(before.size() if before is not None else 0, after.size() if after is not None else 0)
    return _units(size, 1024) + _index_writes(entries_before, _entries_of(backend, table_name, after))


def _changed(before, after):
    """The attribute names a write changed (for the write log)."""
    old = (before.attributes or {}) if before is not None else {}
    new = (after.attributes or {}) if after is not None else {}
    return ",".join(sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)))


def _dynamodb_write(name):
    method = getattr(DynamoDBBackend, name)

    @_outermost("dynamodb")
    def counting(counted, self, table_name, *args, **kwargs):
        if not counted:
            return method(self, table_name, *args, **kwargs)
        try:
            attrs = kwargs.get("item_attrs", args[0] if args else None) if name == "put_item" else kwargs.get("key", args[0] if args else None)
            key = _key_of(self, table_name, attrs) if name == "put_item" else attrs
            before = _stored(self, table_name, key)
        except Exception:
            key, before = None, None
        entries_before = _entries_of(self, table_name, before)
        try:
            item = method(self, table_name, *args, **kwargs)
        except Exception:
            # A write refused by its condition still consumes units: the existing item's size.
            _dynamodb("WriteRequestUnits", table_name, _units(before.size(), 1024) if before is not None else 1, f"{name} refused")
            raise
        after = _stored(self, table_name, key) if key is not None and name != "delete_item" else None
        _dynamodb("WriteRequestUnits", table_name, _write_units(self, table_name, before, after, entries_before), f"{name} {_changed(before, after)}")
        return item

    setattr(DynamoDBBackend, name, counting)


for _name in ["put_item", "update_item", "delete_item"]:
    _dynamodb_write(_name)

_get_item = DynamoDBBackend.get_item


@_outermost("dynamodb")
def _get_item_counted(counted, self, *args, **kwargs):
    item = _get_item(self, *args, **kwargs)
    # Counted as strongly consistent (1 unit per 4 KB): an upper bound. Not counted when moto
    # reads the old item for a write's answer: AWS bills that write only.
    if counted and not getattr(_nesting, "writing", False):
        _dynamodb("ReadRequestUnits", _table(args, kwargs), _units(item.size(), 4096) if item is not None else 1)
    return item


DynamoDBBackend.get_item = _get_item_counted


def _writing(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        _nesting.writing = True
        try:
            return method(*args, **kwargs)
        finally:
            _nesting.writing = False

    return call


for _name in ["put_item", "update_item", "delete_item"]:
    setattr(DynamoHandler, _name, _writing(getattr(DynamoHandler, _name)))

_query = DynamoDBBackend.query


@_outermost("dynamodb")
def _query_counted(counted, self, *args, **kwargs):
    result = _query(self, *args, **kwargs)
    if counted:
        _dynamodb("ReadRequestUnits", _table(args, kwargs), _units(sum(i.size() for i in result[0]), 4096))
    return result


DynamoDBBackend.query = _query_counted

# --- DynamoDB attribute values, answered as they are stored -----------------------------------
# moto answers every request through a serializer driven by the service's botocore model; for an
# item it walks each attribute value's ten possible members (S, N, B, SS, NS, BS, M, L, NULL,
# BOOL), looking each up under several spellings, recursively: a third of an UpdateItem that
# returns a task (ALL_NEW), most of a GetItem, and most of a GetRecords of 25 records with their
# old and new images (BENCH_ONLY=steady's CPU by operation, 2026-11-30). Attribute values reach
# it already in their wire form ({"S": "…"}); `_wire` writes them out as that walk would, member
# for member (strings `str()`ed, booleans as they are, maps and lists recursively), and hands
# anything else (binary values, a value not of that form) to moto's walk. Same bytes out:
# `test_emulator.py` serializes items of every type both ways and compares. One difference: a
# map key that is the empty string, which moto's walk mangles (it merges that member's value
# into the map) and `_wire` writes as it was sent; a map that also holds a binary value still
# goes through moto's walk whole, mangled as before.
from moto.core.serialize import BaseJSONSerializer  # noqa: E402


class _NotWireForm(Exception):
    pass


def _wire(value):
    """An attribute value in its JSON wire form, as moto's model-driven walk writes it out, or
    `_NotWireForm` when the walk would do something else with it (binary values, more or other
    members than one type, a string member that is None, {} or [], which moto keeps as it is)."""
    if type(value) is not dict or len(value) != 1:
        raise _NotWireForm()
    ((kind, inner),) = value.items()
    if kind == "S" or kind == "N":
        if inner is None or inner == {} or inner == []:
            raise _NotWireForm()
        return {kind: str(inner)}
    if kind == "M" and type(inner) is dict:
        return {"M": {name: _wire(member) for name, member in inner.items()}}
    if kind == "L" and type(inner) is list:
        return {"L": [_wire(member) for member in inner]}
    if (kind == "BOOL" or kind == "NULL") and inner is not None:
        return {kind: inner}
    if (kind == "SS" or kind == "NS") and type(inner) is list:
        if any(member is None or member == {} or member == [] for member in inner):
            raise _NotWireForm()
        return {kind: [str(member) for member in inner]}
    raise _NotWireForm()


_serialize_structure = BaseJSONSerializer._serialize_type_structure


_WIRE_SERVICES = ("dynamodb", "dynamodbstreams")  # (other models have an AttributeValue shape too)


@functools.wraps(_serialize_structure)
def _serialize_structure_wire(self, serialized, value, shape, key):
    if key and shape.name == "AttributeValue" and self.operation_model.service_model.service_name in _WIRE_SERVICES:
        try:
            serialized[self.get_serialized_name(shape, key)] = _wire(value)
            return
        except _NotWireForm:
            pass
    _serialize_structure(self, serialized, value, shape, key)


BaseJSONSerializer._serialize_type_structure = _serialize_structure_wire

# moto's TransactWriteItems backs up every table it touches, whole (a deep copy of each, items
# and stream included), to put them back if it is cancelled: a cost that grows with the table
# (the ledger has an entry per order), paid by every transaction, ~10 % of the server's CPU
# under the bench's load and rising. Under the one DynamoDB lock (above) only the transaction's
# own items can change while it runs, so they are what is backed up here, with the length of
# their tables' streams; a cancelled transaction puts those items back and drops the stream
# records its partial writes added. moto's whole-table copy is turned into the table itself.
import moto.dynamodb.models as _dynamodb_models  # noqa: E402
from moto.dynamodb.models.table import Table as _Table  # noqa: E402


class _TablesNotCopied:
    """`copy` as moto's DynamoDB backend module sees it: a table is not copied."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, _Table) else copy.deepcopy(value, memo)


_dynamodb_models.copy = _TablesNotCopied
_transact_whole_tables = DynamoDBBackend.transact_write_items


def _put_back(table, hash_key, range_key, item):
    if item is None:
        try:
            table.delete_item(hash_key, range_key)
        except (KeyError, ValueError):
            pass
    elif table.range_key_attr is not None:
        table.items[hash_key][range_key] = item
    else:
        table.items[hash_key] = item


def _transact_item_backups(self, transact_items):
    with _LOCK:  # (re-entrant) backups and transaction under the same hold
        return _transact_backed_up(self, transact_items)


def _transact_backed_up(self, transact_items):
    backups = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = self.get_table(op["TableName"])
            key = _key_of(self, op["TableName"], op["Item"]) if op_type == "Put" else op["Key"]
            hash_key, range_key = self.get_keys_value(table, key)
            item = table.get_item(hash_key, range_key)
        except Exception:
            continue  # moto refuses this entry itself; the entries before it are backed up
        stream = len(table.stream_shard.items) if table.stream_shard is not None else None
        backups.append((table, hash_key, range_key, copy.deepcopy(item) if item is not None else None, stream))
    try:
        return _transact_whole_tables(self, transact_items)
    except BaseException:
        for table, hash_key, range_key, item, stream in reversed(backups):
            _put_back(table, hash_key, range_key, item)
            if stream is not None and table.stream_shard is not None:
                del table.stream_shard.items[stream:]
        raise


DynamoDBBackend.transact_write_items = _transact_item_backups

_transact = DynamoDBBackend.transact_write_items


@_outermost("dynamodb")
def _transact_counted(counted, self, transact_items):
    """A transaction costs two units per started KB of each item it writes (prepare and commit),
    cancelled or not, ConditionCheck items included
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling),
    each item sized as a single write is (`_write_units`: the larger of before and after, and
    the index writes it causes, doubled as well: an upper bound; taskflow's transactions touch
    no indexed table). A cancelled one wrote nothing: each item costs its existing size."""
    if not counted:
        return _transact(self, transact_items)
    touched = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table_name = op["TableName"]
            key = _key_of(self, table_name, op["Item"]) if op_type == "Put" else op["Key"]
            before = _stored(self, table_name, key)
            touched.append((op_type, table_name, key, before, _entries_of(self, table_name, before)))
        except Exception:
            touched.append((None, "?", None, None, {}))
    committed = False
    try:
        result = _transact(self, transact_items)
        committed = True
        return result
    finally:
        for op_type, table_name, key, before, entries_before in touched:
            if committed and op_type in ("Put", "Update", "Delete"):
                after = _stored(self, table_name, key) if op_type != "Delete" else None
                units = _write_units(self, table_name, before, after, entries_before)
            else:
                units = _units(before.size(), 1024) if before is not None else 1
            _dynamodb("WriteRequestUnits", table_name, 2 * units, f"transaction {op_type} {'committed' if committed else 'cancelled'}")


DynamoDBBackend.transact_write_items = _transact_counted

_put_events = EventsBackend.put_events


@functools.wraps(_put_events)
def _put_events_counted(self, events):
    _count("events.PutEvents")
    _count("events.Events", len(events))
    return _put_events(self, events)


EventsBackend.put_events = _put_events_counted
_counted(S3Backend, "put_object", "s3.PutObject")

_process_segment = XRayBackend.process_segment


@functools.wraps(_process_segment)
def _process_segment_counted(self, doc):
    _process_segment(self, doc)
    trace_id = json.loads(doc).get("trace_id")
    _count("xray.Segments")
    with _USAGE_LOCK:
        if trace_id not in _traces:
            _traces.add(trace_id)
            _usage["xray.Traces"] += 1


XRayBackend.process_segment = _process_segment_counted

# Step Functions API calls by throttling bucket (the Step Functions guide, "Quotas related to API
# action throttling": https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html):
# `make bench`'s capacity model divides each bucket's refill rate by these per order. Failed calls
# (an unknown or expired token) take a token too. Both backends are counted: moto serves from the
# parser backend when it executes state machines, and from the plain one otherwise.
from moto.stepfunctions.models import StepFunctionBackend  # noqa: E402
from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: E402

# A task token answered while another execution is being started: moto lists the new execution
# as RUNNING before it gives it its worker, and SendTaskSuccess / Failure / Heartbeat then failed
# with HTTP 500 (AttributeError on the missing worker) instead of finding the token elsewhere. An
# execution that has no worker yet has issued no token: it is left out of the search.
_get_executions = StepFunctionsParserBackend._get_executions


@functools.wraps(_get_executions)
def _get_started_executions(self, execution_status=None):
    return [e for e in _get_executions(self, execution_status) if getattr(e, "exec_worker", None) is not None]


StepFunctionsParserBackend._get_executions = _get_started_executions

STATES_CALLS = [
    ("start_execution", "states.StartExecution"),
    ("send_task_success", "states.SendTaskSuccess"),
    ("send_task_failure", "states.SendTaskFailure"),
    ("send_task_heartbeat", "states.SendTaskHeartbeat"),
]


def _count_states_calls():
    for cls in (StepFunctionBackend, StepFunctionsParserBackend):
        for name, key in STATES_CALLS:
            # Only a class's own method: a subclass inheriting it is counted through its base.
            if name in vars(cls):
                _counted(cls, name, key)


_count_states_calls()

# --- X-Ray trace headers through EventBridge ----------------------------------------------------
# A PutEvents entry's `TraceHeader` reaches an SQS target as the message's `AWSTraceHeader` system
# attribute (EventBridge API reference, PutEventsRequestEntry.TraceHeader; X-Ray developer guide,
# "Amazon EventBridge and AWS X-Ray"). moto drops it: each entry is delivered with its header in
# a thread-local, and a send to SQS made while it is set carries it.

_trace = threading.local()
_put_events_untraced = _put_events


def _put_events_traced(self, events):
    if len(events) > 10:
        return _put_events_untraced(self, events)  # refused as a whole, as moto does
    entries = []
    for event in events:
        _trace.header = event.get("TraceHeader") or None
        try:
            entries.extend(_put_events_untraced(self, [event]))
        finally:
            _trace.header = None
    return entries


# Under the counting wrapper above (it calls `_put_events` by name): still one request counted.
_put_events = _put_events_traced
_send_message = SQSBackend.send_message


@functools.wraps(_send_message)
def _send_message_traced(self, queue_name, message_body, *args, **kwargs):
    header = getattr(_trace, "header", None)
    if header:
        system = dict(kwargs.get("system_attributes") or {})
        system.setdefault("AWSTraceHeader", {"StringValue": header, "DataType": "String"})
        kwargs["system_attributes"] = system
    return _send_message(self, queue_name, message_body, *args, **kwargs)


SQSBackend.send_message = _send_message_traced

_dispatch = DomainDispatcherApplication.__call__


def _json_answer(start_response, value, status="200 OK"):
    body = json.dumps(value, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _otlp_authorise(environ, start_response):
    import io

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if iam.MODE != "off":
        try:
            sigv4.verify(environ, body, iam.secret_for)
        except sigv4.Refusal as refusal:
            iam.log(f"iam: DENIED: POST /v1/traces: {refusal}")
            out = json.dumps({"message": refusal.message}).encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"), ("x-amzn-ErrorType", refusal.code), ("Content-Length", str(len(out)))])
            return [out]

    def allowed(environ, start_response):
        # Allowed in enforce mode: the answer carries the scope's derived signing key, so that
        # the OTLP endpoint can verify the same caller's next requests of that scope itself for a
        # few seconds (otlp.rs, `AUTHORISED_FOR`) without a round trip through this one process.
        # Not in record mode (each would-be denial is to be recorded) nor with IAM off.
        found = sigv4.scope(environ) if iam.MODE == "enforce" else None
        secret = iam.secret_for(found[0]) if found else None
        if secret is None:
            return _json_answer(start_response, {})
        import base64

        key = sigv4.signing_key(secret, *found[1:])
        return _json_answer(start_response, {"scope": "/".join(found), "signingKey": base64.b64encode(key).decode()})

    return iam.check(environ, start_response, allowed)


# --- Where the emulator's CPU goes ------------------------------------------------------------
# Every request's thread CPU (`time.thread_time_ns`: this request's own work, not the time it
# waited for the GIL or a lock), summed per operation: `GET /taskflow/cpu` ({"SERVICE.Operation":
# [requests, microseconds]}), `DELETE` to read and reset. Kept apart from `/taskflow/usage`, whose
# counts stand still when nothing happens (polls cost CPU all the time). `BENCH_ONLY=steady`
# prints it per order. The operation: the JSON protocols' `X-Amz-Target`, else the request
# method; the service: the SigV4 credential scope's, else "unsigned". Work the Step Functions
# engine does on its own threads (outside any request) is not in it.
_CPU_LOCK = threading.Lock()
_cpu = {}


def _operation(environ):
    target = environ.get("HTTP_X_AMZ_TARGET")
    found = sigv4.scope(environ)  # (access key, day, region, service)
    service = found[3] if found else "unsigned"
    return f"{service}.{target.rsplit('.', 1)[-1] if target else environ.get('REQUEST_METHOD')}"


def _cpu_spent(environ, nanoseconds):
    operation = _operation(environ)
    with _CPU_LOCK:
        spent = _cpu.setdefault(operation, [0, 0])
        spent[0] += 1
        spent[1] += nanoseconds // 1000


def _cpu_by_operation(clear):
    with _CPU_LOCK:
        answer = {k: list(v) for k, v in _cpu.items()}
        if clear:
            _cpu.clear()
    return answer


# --- Which services this process serves ---------------------------------------------------------
# The local stack runs two of these processes (infra/taskflow/src/local.rs): one for the storage
# services (DynamoDB, DynamoDB Streams, S3), one for everything else, each deployed with the whole
# template. Once the deploy is done the host tells each which services it serves (`POST
# /taskflow/services`, {"only": [SERVICE, …]} or {"except": [SERVICE, …]}, by SigV4 signing name:
# DynamoDB Streams signs as `dynamodb` too); a request signed for another service is then refused
# as AWS refuses a request sent to another service's endpoint, with InvalidSignatureException
# "Credential should be scoped to correct service" (HTTP 400), instead of being served from that
# process's unused copy of the stack. moto's own in-process calls (CloudFormation, Step Functions'
# SQS and EventBridge tasks) do not come through here. An unsigned request names no service: it
# goes on to IAM (iam.py), which refuses it as the service would (MissingAuthenticationToken, or
# S3's 403 AccessDenied for a private bucket), or to the emulator's own routes. With
# {"queueNotificationsTo": URL} as well, S3's event notifications to SQS queues go to that
# process's queues (`POST /taskflow/s3-notifications`), where the queues are polled: moto sends
# them in-process, to this process's unused copies.
_SERVES = {"only": None, "except": frozenset(), "queue_notifications_to": None}
# An `Authorization` header moto cannot read a service from: refused by both processes.
_MALFORMED = "(a malformed Authorization header)"


def _signed_service(environ):
    """The SigV4 signing name of a request, read as moto reads it to choose the backend that serves
    it (`DomainDispatcherApplication.infer_service_region_host`: the `Authorization` header's
    credential scope KEY/DAY/REGION/SERVICE/aws4_request, aliases applied), so that what is
    checked here is what moto then routes; or a presigned URL's `X-Amz-Credential`; None if
    unsigned; `_MALFORMED` for a header moto cannot read."""
    auth = environ.get("HTTP_AUTHORIZATION")
    if auth:
        try:
            _, _, _, service, _ = auth.split(",")[0].split()[1].split("/")
        except (ValueError, IndexError):
            return _MALFORMED
        return _SIGNING_ALIASES.get(service.lower(), service).lower()
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0].split("/")
    return credential[3].lower() if len(credential) == 5 else None


def _serves(service):
    if service is None:
        return True
    if service == _MALFORMED:
        return False
    only, excluded = _SERVES["only"], _SERVES["except"]
    return (only is None or service in only) and service not in excluded


def _set_services(body):
    try:
        wanted = json.loads(body or b"{}")
    except ValueError:
        wanted = None
    forward = wanted.pop("queueNotificationsTo", None) if isinstance(wanted, dict) else None
    if (
        not isinstance(wanted, dict)
        or set(wanted) - {"only", "except"}
        or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in wanted.values())
        or not (forward is None or (isinstance(forward, str) and forward.startswith("http://127.0.0.1:")))
    ):
        return {"error": 'expected {"only": [SERVICE, …]} or {"except": [SERVICE, …]}, and optionally "queueNotificationsTo": "http://127.0.0.1:PORT"'}, "400 Bad Request"
    _SERVES["only"] = frozenset(wanted["only"]) if "only" in wanted else None
    _SERVES["except"] = frozenset(wanted.get("except", []))
    _SERVES["queue_notifications_to"] = forward
    return {
        "only": sorted(_SERVES["only"]) if _SERVES["only"] is not None else None,
        "except": sorted(_SERVES["except"]),
        "queueNotificationsTo": forward,
    }, "200 OK"


import moto.s3.notifications as _s3_notifications  # noqa: E402

_send_sqs_notification = _s3_notifications._send_sqs_message


def _send_sqs_notification_where_polled(account_id, event_body, queue_name, region_name):
    """S3's notification to an SQS queue: to the process named by `queueNotificationsTo`, else
    in-process as moto does. A notification that cannot be handed on is logged (on AWS delivery
    is asynchronous and retried; here the emulator's log says what was lost and why)."""
    forward = _SERVES["queue_notifications_to"]
    if forward is None:
        return _send_sqs_notification(account_id, event_body, queue_name, region_name)
    import urllib.request

    body = json.dumps({"account": account_id, "region": region_name, "queue": queue_name, "body": event_body}).encode()
    request = urllib.request.Request(f"{forward}/taskflow/s3-notifications", data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised into the PutObject
        print(f"emulator: S3 notification to queue {queue_name} not delivered to {forward}: {e}", file=sys.stderr, flush=True)


def _deliver_s3_notification(body):
    """`POST /taskflow/s3-notifications` from the storage process: onto this process's queue, if a
    bucket here sends its notifications to that queue (the template's buckets are deployed to
    both processes, with their notification configurations); anything else is refused (400)."""
    from moto.s3.models import s3_backends

    try:
        note = json.loads(body)
        account, region, queue = note["account"], note["region"], note["queue"]
        event = note["body"]
        targets = {
            target.arn
            for bucket in s3_backends[account]["aws"].buckets.values()
            if bucket.notification_configuration is not None
            for target in bucket.notification_configuration.queue
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"error": 'expected {"account", "region", "queue", "body"}'}, "400 Bad Request"
    if not any(arn.split(":")[3:4] == [region] and arn.split(":")[-1] == queue for arn in targets):
        return {"error": f"no bucket here sends its notifications to queue {queue!r} in {region}"}, "400 Bad Request"
    _send_sqs_notification(account, event, queue, region)
    return {"delivered": queue}, "200 OK"


_s3_notifications._send_sqs_message = _send_sqs_notification_where_polled


def _not_served(environ, start_response, service):
    if service == _MALFORMED:
        why = "The authorization header is malformed: no credential scope KEY/DAY/REGION/SERVICE/aws4_request"
    else:
        # On the storage process the other services are at `endpoint`; on the main one, the
        # storage services at `storageEndpoint` (.taskflow/stack.json).
        elsewhere = "`endpoint`" if _SERVES["only"] is not None else "`storageEndpoint`"
        why = (f"Credential should be scoped to correct service: this endpoint of the local stack does not serve {service}; "
               f"it is served at {elsewhere} in .taskflow/stack.json")
    if service == "s3":
        # S3 clients read XML errors; S3's own for a credential scope that is not its own.
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AuthorizationHeaderMalformed</Code>'
                f"<Message>{html.escape(why)}</Message></Error>").encode()
        headers = [("Content-Type", "application/xml")]
    else:
        body = json.dumps({"__type": "InvalidSignatureException", "message": why}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", "InvalidSignatureException")]
    start_response("400 Bad Request", headers + [("Content-Length", str(len(body)))])
    return [body]


def _dispatch_with_usage(self, environ, start_response):
    if _FREEZE["pending"]:
        _FREEZE["pending"] = False
        gc.freeze()
    path = environ.get("PATH_INFO")
    method = environ.get("REQUEST_METHOD")
    if path == "/taskflow/iam/identities" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return _json_answer(start_response, iam.register(environ["wsgi.input"].read(length)))
    if path == "/taskflow/iam/denials":
        return _json_answer(start_response, {"mode": iam.MODE, "denials": iam.denials(clear=method == "DELETE")})
    if path == "/v1/traces" and method == "POST":
        # The X-Ray OTLP endpoint's authorisation (xray:PutSpans for the signed caller), asked by
        # the local OTLP endpoint (infra/taskflow/src/otlp.rs) before it stores the spans. The
        # signature is verified first, as X-Ray does (sigv4.py): unsigned, unknown key, wrong
        # secret or another body than the one signed is 403 and nothing is stored.
        return _otlp_authorise(environ, start_response)
    if path == "/taskflow/cpu":
        return _json_answer(start_response, _cpu_by_operation(clear=method == "DELETE"))
    if path != "/taskflow/usage":
        started = time.thread_time_ns()
        try:
            return iam.check(environ, start_response, lambda e, s: _dispatch(self, e, s))
        finally:
            _cpu_spent(environ, time.thread_time_ns() - started)
    with _USAGE_LOCK:
        body = json.dumps(dict(_usage), sort_keys=True).encode()
        if environ.get("REQUEST_METHOD") == "DELETE":
            _usage.clear()
            # Traces seen stay seen: a segment arriving after a reset is not a new trace.
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


DomainDispatcherApplication.__call__ = _dispatch_with_usage

# --- The workflows' own calls, as their roles -----------------------------------------------
# moto's Step Functions engine makes a task's service calls (sqs:sendMessage, events:putEvents)
# with boto3 against this server, signed with fixed keys. Signed instead with the key registered
# for the state machine's role (deploy.py registers the workflow roles), they are checked against
# that role, as Step Functions calls with its execution role on AWS.
import moto.stepfunctions.parser.asl.utils.boto_client as _boto_client  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: E402
    state_task_service_events as _sfn_events,
    state_task_service_sqs as _sfn_sqs,
)

_boto_client_for = _boto_client.boto_client_for


_role_clients = {}
_role_clients_lock = threading.Lock()


def _boto_client_as_role(region, service, state_credentials=None):
    key = iam.access_key_for_role(getattr(state_credentials, "role_arn", None))
    if key is None:
        return _boto_client_for(region, service, state_credentials)
    # One client per role, service and region, kept (botocore clients are thread-safe): making
    # a client costs tens of milliseconds, which moto's engine would pay on every task.
    with _role_clients_lock:
        client = _role_clients.get((region, service, key))
        if client is None:
            import boto3
            from botocore.config import Config
            from moto.settings import moto_server_port

            client = boto3.client(
                service_name=service,
                region_name=region,
                endpoint_url=f"http://localhost:{moto_server_port()}",
                aws_access_key_id=key,
                aws_secret_access_key="local",
                # As moto's own: no retries, so a refusal is the task's failure at once.
                config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1}),
            )
            _role_clients[(region, service, key)] = client
        return client


for _module in (_sfn_sqs, _sfn_events):
    _module.boto_client_for = _boto_client_as_role
# --- A stopped execution is ABORTED -----------------------------------------------------------
# StopExecution on an execution waiting on a callback step: moto's engine leaves the wait loop
# when the execution stops, fails the step with States.Runtime and records that error over the
# stop, so the execution ends FAILED. On AWS it ends ABORTED with the stop's error and cause
# (StopExecution API reference; ExecutionAborted history event). A stopped program keeps its
# state here.
from moto.stepfunctions.parser.asl.eval import environment as _sfn_environment  # noqa: E402
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped as _ProgramStopped  # noqa: E402

_set_error = _sfn_environment.Environment.set_error


def _set_error_unless_stopped(self, error):
    if isinstance(self._program_state, _ProgramStopped):
        return
    _set_error(self, error)


_sfn_environment.Environment.set_error = _set_error_unless_stopped

# A task token answered before its task starts waiting: moto sends the task's message, then sets
# up the heartbeat clock the wait watches. A worker that answered in between (a fast one does)
# had its answer recorded but the wait, started afterwards on a fresh clock, missed it and sat
# until HeartbeatSeconds ran out (States.HeartbeatTimeout on a task that succeeded); and a
# SendTaskHeartbeat in that window was refused as InvalidToken. On AWS the token is good from
# the moment the message is sent. Here a clock set up after the answer starts as notified, and a
# heartbeat before the clock exists is accepted (there is nothing to reset yet), as is one for a
# task without HeartbeatSeconds (moto said InvalidToken; AWS takes a heartbeat for any token of a
# task still running).
from moto.stepfunctions.parser.asl.eval.callback import callback as _sfn_callback  # noqa: E402

_setup_heartbeat_endpoint = _sfn_callback.CallbackEndpoint.setup_heartbeat_endpoint


@functools.wraps(_setup_heartbeat_endpoint)
def _setup_heartbeat_endpoint_answered(self, heartbeat_seconds):
    endpoint = _setup_heartbeat_endpoint(self, heartbeat_seconds)
    if self.get_outcome() is not None:
        endpoint.notify()
    return endpoint


def _notify_heartbeat_before_the_clock(self):
    endpoint = self._heartbeat_endpoint
    if endpoint is not None:
        endpoint.notify()
    return True


_sfn_callback.CallbackEndpoint.setup_heartbeat_endpoint = _setup_heartbeat_endpoint_answered
_sfn_callback.CallbackEndpoint.notify_heartbeat = _notify_heartbeat_before_the_clock

# AWS's payload and shape limits (limits.py): installed last, so that a call AWS refuses is
# refused before anything above counts it.
import limits  # noqa: E402

limits.install(_LOCK)

# Presigned S3 URLs: expiry and signature checked as S3 does (presigned.py); outermost, as S3
# authenticates a request before anything else.
import presigned  # noqa: E402

presigned.install(iam.secret_for)

# Outermost, so that a request for a service this process does not serve meets none of the
# checks above (see "Which services this process serves").
_checked_dispatch = DomainDispatcherApplication.__call__


@functools.wraps(_checked_dispatch)
def _dispatch_if_served(self, environ, start_response):
    path = environ.get("PATH_INFO") or ""
    if path == "/taskflow/services" and environ.get("REQUEST_METHOD") == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        answer, status = _set_services(environ["wsgi.input"].read(length))
        return _json_answer(start_response, answer, status)
    if path == "/taskflow/s3-notifications" and environ.get("REQUEST_METHOD") == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        answer, status = _deliver_s3_notification(environ["wsgi.input"].read(length))
        return _json_answer(start_response, answer, status)
    service = _signed_service(environ)
    if not _serves(service):
        return _not_served(environ, start_response, service)
    return _checked_dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _dispatch_if_served

# Speed, no change in what is served (measured with py-spy under the bench's load: ~10 % of the
# server's CPU each):
# - moto's dispatcher lists its own package directory (`os.listdir` and an `isdir` per
#   service, under its lock) on every request to find the service (`backends.
#   list_of_moto_modules`, from `DomainDispatcherApplication.get_backend_for_host`); the list
#   cannot change while the server runs, so it is read once;
# - werkzeug writes an access-log line per request to this process's log (the functions' and
#   the CLI's calls: hundreds a second under load), contending on the log handler's lock with
#   the request threads. It is kept at warnings; `iam:` lines and errors are unaffected.
import logging  # noqa: E402

from moto import backends as _moto_backends  # noqa: E402

_MOTO_MODULES = tuple(_moto_backends.list_of_moto_modules())
_moto_backends.list_of_moto_modules = lambda: _MOTO_MODULES

# - moto's UpdateExpression parser and validator: the tree kept per text, copied from its pickle,
#   the checks fixed by the text not repeated, the traversal's class questions answered once
#   (dynamodb_expressions.py, which says why none of it changes an answer).
import dynamodb_expressions  # noqa: E402

dynamodb_expressions.install()
if os.environ.get("TASKFLOW_EMULATOR_ACCESS_LOG") != "1":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

# --- Garbage collection pauses -----------------------------------------------------------------
# CPython's full (generation 2) collection walks every object it tracks, with the GIL held: every
# request waits. The emulator holds moto, botocore's service models and all the state of a run
# (executions with their parsed programs, items, messages), so a full collection walked 350 000 to
# 490 000 objects and took 220-330 ms, several times a `make bench` run: that was the latency
# tail at steady load (an order in flight during one waited for it), and ~10% of the emulator's
# CPU (BENCH_ONLY=steady, 2026-11-30). Objects that survived a full collection are live; they
# are frozen before the next request (`gc.freeze`: moved to the permanent generation, which later
# collections ignore; Python docs, `gc` module), so the next full collection walks only what came
# since: 7-14 ms in the same run. `gc.freeze` takes every tracked object, so the objects of
# requests in flight on other threads at that moment are frozen too. Frozen objects are still
# freed by reference counting when dropped; one caught in a reference cycle that becomes garbage
# later (a request's exception with its traceback, say) stays in memory until the emulator stops:
# at most what the requests in flight hold, once per full collection. What the emulator answers
# is unchanged.
_FREEZE = {"pending": False}


def _freeze_after_full_collection(phase, info):
    if phase == "stop" and info["generation"] == 2:
        _FREEZE["pending"] = True  # frozen at the next request, outside the collector


gc.callbacks.append(_freeze_after_full_collection)
# What importing moto and botocore made, before the first request.
gc.collect()
gc.freeze()


if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())

