"""Unit tests of the emulator's DynamoDB write-unit accounting (emulator.py), against moto's
backend directly: the numbers AWS's rules give, worked by hand. Run:
`.venv/bin/python -m unittest discover -s infra/local -p 'test_*.py'`."""

import json
import unittest

import emulator
from moto.dynamodb.exceptions import ConditionalCheckFailed, TransactionCanceledException
from moto.dynamodb.models import dynamodb_backends

ACCOUNT, REGION = "123456789012", "eu-west-1"


def s(value):
    return {"S": value}


class WriteUnits(unittest.TestCase):
    def setUp(self):
        self.backend = dynamodb_backends[ACCOUNT][REGION]
        for name in list(self.backend.tables):
            self.backend.delete_table(name)
        self.table("tasks", [
            ("byOwner", ["owner", "createdAt"], {"ProjectionType": "ALL"}),
            ("byStatus", ["status", "updatedAt"], {"ProjectionType": "KEYS_ONLY"}),
            ("inflight", ["shardKey", "since"], {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]}),
        ])
        self.table("plain", [])
        emulator._usage.clear()

    def table(self, name, indexes):
        attrs = {"taskId"} | {a for _, keys, _ in indexes for a in keys}
        self.backend.create_table(
            name,
            schema=[{"AttributeName": "taskId", "KeyType": "HASH"}],
            throughput=None,
            attr=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attrs)],
            global_indexes=[
                {"IndexName": index, "KeySchema": [{"AttributeName": keys[0], "KeyType": "HASH"}, {"AttributeName": keys[1], "KeyType": "RANGE"}], "Projection": projection}
                for index, keys, projection in indexes
            ],
            indexes=[], streams=None, billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[],
            deletion_protection_enabled=False, warm_throughput=None,
        )

    def units(self, table="tasks"):
        taken = emulator._usage[f"dynamodb.WriteRequestUnits.{table}"]
        emulator._usage.clear()
        return taken

    def update(self, expression, values=None, condition=None, names=None, table="tasks"):
        return self.backend.update_item(table, {"taskId": s("t1")}, expression, names or {}, values or {}, condition_expression=condition)

    def test_a_put_writes_the_item_and_each_index_it_enters(self):
        # Item 1 + byOwner 1 (has owner, createdAt) + byStatus 1; not in inflight (no shard).
        self.backend.put_item("tasks", {"taskId": s("t1"), "owner": s("a"), "createdAt": s("1"), "status": s("R"), "updatedAt": s("1")})
        self.assertEqual(self.units(), 3)

    def test_an_update_writes_only_the_indexes_it_touches(self):
        self.backend.put_item("tasks", {"taskId": s("t1"), "owner": s("a"), "createdAt": s("1"), "status": s("R"), "updatedAt": s("1"), "shardKey": s("0"), "since": s("1")})
        self.units()
        # A non-key attribute: item 1 + byOwner (ALL) 1; byStatus (KEYS_ONLY) 0; inflight (INCLUDE status) 0.
        self.update("SET note = :n", {":n": s("x")})
        self.assertEqual(self.units(), 2)
        # Setting the same value again changes no index entry: the item only.
        self.update("SET note = :n", {":n": s("x")})
        self.assertEqual(self.units(), 1)
        # byStatus's key changes (delete + put: 2), inflight's included status changes (1), byOwner (ALL) 1.
        self.update("SET #s = :s, updatedAt = :u", {":s": s("C"), ":u": s("2")}, names={"#s": "status"})
        self.assertEqual(self.units(), 1 + 1 + 2 + 1)
        # Leaving inflight: 1 for it, plus the item and byOwner (ALL: an attribute went).
        self.update("REMOVE shardKey, since")
        self.assertEqual(self.units(), 3)

    def test_a_delete_writes_the_index_entries_it_removes(self):
        self.backend.put_item("tasks", {"taskId": s("t1"), "owner": s("a"), "createdAt": s("1")})
        self.units()
        self.backend.delete_item("tasks", {"taskId": s("t1")})
        self.assertEqual(self.units(), 2)
        # Nothing to delete: still one unit.
        self.backend.delete_item("tasks", {"taskId": s("t1")})
        self.assertEqual(self.units(), 1)

    def test_an_item_costs_one_unit_per_started_kilobyte_the_larger_of_before_and_after(self):
        big = "x" * 2500
        self.backend.put_item("plain", {"taskId": s("t1"), "payload": s(big)})
        self.assertEqual(self.units("plain"), 3)
        # Shrinking it: the item before was the larger (3 KB).
        self.update("REMOVE payload", table="plain")
        self.assertEqual(self.units("plain"), 3)
        self.update("SET small = :v", {":v": s("y")}, table="plain")
        self.assertEqual(self.units("plain"), 1)

    def test_a_refused_condition_costs_the_existing_item_and_writes_no_index(self):
        self.backend.put_item("tasks", {"taskId": s("t1"), "owner": s("a"), "createdAt": s("1"), "payload": s("x" * 1500)})
        self.units()
        with self.assertRaises(ConditionalCheckFailed):
            self.backend.put_item("tasks", {"taskId": s("t1"), "owner": s("b"), "createdAt": s("2")}, condition_expression="attribute_not_exists(taskId)")
        self.assertEqual(self.units(), 2)
        with self.assertRaises(ConditionalCheckFailed):
            self.backend.update_item("tasks", {"taskId": s("none")}, "SET a = :a", {}, {":a": s("1")}, condition_expression="attribute_exists(taskId)")
        self.assertEqual(self.units(), 1)

    def test_a_transaction_costs_two_units_per_item_committed_or_cancelled(self):
        self.backend.put_item("plain", {"taskId": s("t1"), "n": {"N": "5"}})
        self.units("plain")
        items = [
            {"Update": {"TableName": "plain", "Key": {"taskId": s("t1")}, "UpdateExpression": "SET n = n - :q", "ConditionExpression": "n >= :q", "ExpressionAttributeValues": {":q": {"N": "3"}}}},
            {"Put": {"TableName": "plain", "Item": {"taskId": s("t2"), "payload": s("x" * 1500)}}},
        ]
        self.backend.transact_write_items(items)
        self.assertEqual(self.units("plain"), 2 * 1 + 2 * 2)
        # Cancelled (2 < 3): each item at its existing size (t2 is 2 KB now), doubled.
        with self.assertRaises(TransactionCanceledException):
            self.backend.transact_write_items(items)
        self.assertEqual(self.units("plain"), 2 * 1 + 2 * 2)

    def test_a_transaction_writes_the_indexes_it_touches_doubled(self):
        items = [{"Put": {"TableName": "tasks", "Item": {"taskId": s("t1"), "owner": s("a"), "createdAt": s("1")}}}]
        self.backend.transact_write_items(items)
        self.assertEqual(self.units(), 2 * (1 + 1))


class TransactionRollback(unittest.TestCase):
    """A cancelled transaction puts back exactly the items it wrote (emulator.py backs up those,
    not whole tables), and its partial writes leave no stream record."""

    def setUp(self):
        self.backend = dynamodb_backends[ACCOUNT][REGION]
        for name in list(self.backend.tables):
            self.backend.delete_table(name)
        self.backend.create_table(
            "stock", schema=[{"AttributeName": "taskId", "KeyType": "HASH"}], throughput=None,
            attr=[{"AttributeName": "taskId", "AttributeType": "S"}], global_indexes=[], indexes=[],
            streams={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}, billing_mode="PAY_PER_REQUEST",
            sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None,
        )
        for key, n in [("a", "5"), ("b", "1"), ("other", "7")]:
            self.backend.put_item("stock", {"taskId": s(key), "n": {"N": n}})

    def n(self, key):
        item = self.backend.get_item("stock", {"taskId": s(key)})
        return None if item is None else item.attrs["n"].value

    def test_a_cancelled_transaction_puts_its_items_back_and_no_other_item_changes(self):
        table = self.backend.get_table("stock")
        records = len(table.stream_shard.items)
        take = lambda key, q: {"Update": {"TableName": "stock", "Key": {"taskId": s(key)}, "UpdateExpression": "SET n = n - :q",
                                          "ConditionExpression": "n >= :q", "ExpressionAttributeValues": {":q": {"N": q}}}}
        new = {"Put": {"TableName": "stock", "Item": {"taskId": s("new"), "n": {"N": "1"}}}}
        # a is taken (applied first), then b cannot be: all of it is undone.
        with self.assertRaises(TransactionCanceledException):
            self.backend.transact_write_items([take("a", "2"), new, take("b", "2")])
        self.assertEqual((self.n("a"), self.n("b"), self.n("new"), self.n("other")), ("5", "1", None, "7"))
        self.assertEqual(len(table.stream_shard.items), records, "no stream record of an undone write")
        self.assertIs(self.backend.get_table("stock"), table, "the table itself, not a copy, stays")
        # The same transaction that fits commits, with its stream records.
        self.backend.transact_write_items([take("a", "2"), new, take("b", "1")])
        self.assertEqual((self.n("a"), self.n("b"), self.n("new"), self.n("other")), ("3", "0", "1", "7"))
        self.assertEqual(len(table.stream_shard.items), records + 3)

    def test_a_number_past_38_digits_in_plain_notation_reads_back_through_a_projection(self):
        # 1E+40 is stored as 41 digits (one significant); a projection used to fail (HTTP 500).
        self.backend.put_item("stock", {"taskId": s("big"), "n": {"N": "1E+40"}, "other": s("x")})
        item = self.backend.get_item("stock", {"taskId": s("big")}, projection_expressions=[["n"]])
        self.assertEqual(item.to_json()["Attributes"], {"n": {"N": "1" + "0" * 40}})
        self.assertEqual(self.backend.get_item("stock", {"taskId": s("big")}, projection_expressions=[["other"]]).to_json()["Attributes"], {"other": s("x")})

    def test_a_string_member_that_is_not_a_string_is_refused_not_a_crash(self):
        from moto.dynamodb.exceptions import SerializationException

        for value in [5, True, {"x": 1}]:
            with self.assertRaises(SerializationException, msg=repr(value)):
                self.backend.put_item("stock", {"taskId": s("odd"), "x": {"S": value}})

    def test_an_update_refused_as_too_large_leaves_no_item_and_no_stream_record(self):
        from moto.dynamodb.exceptions import MockValidationException

        table = self.backend.get_table("stock")
        records = len(table.stream_shard.items)
        big = {":v": s("v" * 210 * 1024)}
        with self.assertRaises(MockValidationException):
            self.backend.update_item("stock", {"taskId": s("fresh")}, "SET a = :v, b = :v", {}, big)
        self.assertIsNone(self.n("fresh"))
        self.assertIsNone(self.backend.get_item("stock", {"taskId": s("fresh")}), "no key-only item left")
        self.assertEqual(len(table.stream_shard.items), records, "no INSERT/REMOVE of a write DynamoDB never made")


class UpdateExpressionsParsedOnce(unittest.TestCase):
    """moto's UpdateExpression trees are kept per text (emulator.py) and handed out as they are:
    moto's validator fills a copy of the tree with an update's values, never the tree."""

    def setUp(self):
        self.backend = dynamodb_backends[ACCOUNT][REGION]
        for name in list(self.backend.tables):
            self.backend.delete_table(name)
        self.backend.create_table(
            "kept", schema=[{"AttributeName": "taskId", "KeyType": "HASH"}], throughput=None,
            attr=[{"AttributeName": "taskId", "AttributeType": "S"}], global_indexes=[], indexes=[], streams=None,
            billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None,
        )

    def test_the_same_text_with_other_values_applies_those_values(self):
        expression = "SET #s = :s, history = list_append(if_not_exists(history, :none), :h), n = n + :one"
        for key, status in [("a", "RECEIVED"), ("b", "CHARGING"), ("a", "COMPLETED")]:
            values = {":s": s(status), ":none": {"L": []}, ":h": {"L": [s(status)]}, ":one": {"N": "1"}}
            if self.backend.get_item("kept", {"taskId": s(key)}) is None:
                self.backend.put_item("kept", {"taskId": s(key), "n": {"N": "0"}})
            self.backend.update_item("kept", {"taskId": s(key)}, expression, {"#s": "status"}, values)
        a = self.backend.get_item("kept", {"taskId": s("a")}).to_json()["Attributes"]
        b = self.backend.get_item("kept", {"taskId": s("b")}).to_json()["Attributes"]
        self.assertEqual(a["status"], s("COMPLETED"))
        self.assertEqual(a["history"], {"L": [s("RECEIVED"), s("COMPLETED")]})
        self.assertEqual(a["n"], {"N": "2"})
        self.assertEqual((b["status"], b["history"], b["n"]), (s("CHARGING"), {"L": [s("CHARGING")]}, {"N": "1"}))
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser

        self.assertIs(UpdateExpressionParser.make(expression), UpdateExpressionParser.make(expression), "the text was parsed once and kept")

    @staticmethod
    def dump(node, seen=()):
        """Type and contents, recursively (the nodes have no repr of their own; a node met again
        on the way down, a parent link, is named, not walked)."""
        dump = UpdateExpressionsParsedOnce.dump
        if id(node) in seen:
            return "<cycle>"
        if isinstance(node, (list, tuple)):
            return [dump(n, seen) for n in node]
        if hasattr(node, "__dict__"):
            seen = seen + (id(node),)
            return [type(node).__name__, {k: dump(v, seen) for k, v in sorted(vars(node).items())}]
        return repr(node)

    def test_the_kept_tree_is_never_written_to(self):
        from moto.dynamodb.parsing.ast_nodes import ExpressionAttributeValue
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser

        expression = "SET kept = :v, m = list_append(if_not_exists(m, :none), :v)"
        dump = self.dump

        tree = UpdateExpressionParser.make(expression)
        before = dump(tree)
        placeholders = sorted(v.get_value_name() for v in tree.find_clauses([ExpressionAttributeValue]))
        self.backend.put_item("kept", {"taskId": s("a")})
        for value in ["x", "y"]:
            self.backend.update_item("kept", {"taskId": s("a")}, expression, {}, {":v": {"L": [s(value)]}, ":none": {"L": []}})
        self.assertIs(UpdateExpressionParser.make(expression), tree, "kept")
        self.assertEqual(dump(tree), before, "an update wrote into the kept tree (moto's validator no longer copies it?)")
        self.assertEqual(sorted(v.get_value_name() for v in tree.find_clauses([ExpressionAttributeValue])), placeholders)
        self.assertEqual(self.backend.get_item("kept", {"taskId": s("a")}).to_json()["Attributes"]["m"], {"L": [s("x"), s("y")]})

    def test_a_text_that_does_not_parse_is_refused_every_time(self):
        from moto.dynamodb.exceptions import MockValidationException

        self.backend.put_item("kept", {"taskId": s("a")})
        for _ in range(2):
            with self.assertRaises(MockValidationException):
                self.backend.update_item("kept", {"taskId": s("a")}, "SET = :v", {}, {":v": s("x")})


class UpdateExpressionsAsMotoShipsThem(unittest.TestCase):
    """dynamodb_expressions.py changes how much moto's UpdateExpression validator costs, not what
    it answers: each case runs twice through moto's code as shipped and twice through the
    emulator's (the second run takes the kept tree and skipped checks), each on a fresh item; the
    items and errors must be the same."""

    CASES = [
        ("SET #s = :s, history = list_append(if_not_exists(history, :none), :h), n = n + :one", {"#s": "status"},
         {":s": s("CHARGING"), ":none": {"L": []}, ":h": {"L": [s("CHARGING")]}, ":one": {"N": "1"}}),
        ("SET a = :v REMOVE b, c[1]", {}, {":v": s("x")}),
        ("ADD tags :set, n :one DELETE spare :del", {}, {":set": {"SS": ["p", "q"]}, ":one": {"N": "2"}, ":del": {"SS": ["y"]}}),
        ("SET x = if_not_exists(x, :v), c = list_append(:l, c), m.k = :v", {}, {":v": s("z"), ":l": {"L": [s("first")]}}),
        ("SET a = :v, a = :w", {}, {":v": s("1"), ":w": s("2")}),
        ("SET m.k = :v, m = :w", {}, {":v": s("1"), ":w": {"M": {}}}),
        ("SET #a = :v, #b = :v", {"#a": "a", "#b": "a"}, {":v": s("1")}),
        ("SET #a = :v, #b = :v", {"#a": "a", "#b": "b"}, {":v": s("1")}),
        ("SET #k = :v", {"#k": "ok"}, {":v": s("1")}),
        ("SET #k = :v", {"#k": "taskId"}, {":v": s("1")}),
        ("SET taskId = :v", {}, {":v": s("1")}),
        ("SET a = nothere + :one", {}, {":one": {"N": "1"}}),
        ("SET nowhere.x.y = :v", {}, {":v": s("1")}),
        ("SET n = n + :v", {}, {":v": s("text")}),
        ("REMOVE a REMOVE b", {}, {}),
        ("SET a = :v SET b = :v", {}, {":v": s("1")}),
        ("SET c[5] = :v, n = n - :one", {}, {":v": s("end"), ":one": {"N": "1"}}),
        ("SET a = :empty", {}, {":empty": s("")}),
    ]

    def setUp(self):
        import dynamodb_expressions

        self.dynamodb_expressions = dynamodb_expressions
        self.backend = dynamodb_backends[ACCOUNT][REGION]
        for name in list(self.backend.tables):
            self.backend.delete_table(name)
        self.backend.create_table(
            "same", schema=[{"AttributeName": "taskId", "KeyType": "HASH"}, {"AttributeName": "ok", "KeyType": "RANGE"}],
            throughput=None, attr=[{"AttributeName": "taskId", "AttributeType": "S"}, {"AttributeName": "ok", "AttributeType": "S"}],
            global_indexes=[], indexes=[], streams=None, billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[],
            deletion_protection_enabled=False, warm_throughput=None,
        )
        self.backend.create_table(
            "other", schema=[{"AttributeName": "taskId", "KeyType": "HASH"}], throughput=None,
            attr=[{"AttributeName": "taskId", "AttributeType": "S"}], global_indexes=[], indexes=[], streams=None,
            billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None,
        )
        self.addCleanup(dynamodb_expressions.install)

    def outcome(self, table, expression, names, values):
        key = {"taskId": s("t")} | ({"ok": s("k")} if table == "same" else {})
        self.backend.put_item(table, key | {
            "status": s("RECEIVED"), "n": {"N": "5"}, "a": s("old"), "b": s("gone"),
            "c": {"L": [s("0"), s("1"), s("2")]}, "m": {"M": {"k": s("v")}}, "spare": {"SS": ["x", "y"]},
        })
        try:
            self.backend.update_item(table, key, expression, dict(names), json.loads(json.dumps(values)))
        except Exception as error:  # the error is the outcome compared
            return type(error).__name__, str(error)
        return json.dumps(self.backend.get_item(table, key).to_json()["Attributes"], sort_keys=True)

    def outcomes(self):
        return [
            [self.outcome(table, *case) for _ in range(2)]
            for table in ("other", "same") for case in self.CASES
        ]

    def test_items_and_errors_are_moto_s_own(self):
        self.dynamodb_expressions.uninstall()
        shipped = self.outcomes()
        self.dynamodb_expressions.install()
        ours = self.outcomes()
        for case, (a, b) in zip(self.CASES * 2, zip(shipped, ours)):
            self.assertEqual(a, b, case[0])
        errors = {o[0][0] for o in shipped if isinstance(o[0], tuple)}
        # The set covers moto's refusals (each pass's), not only updates that apply.
        self.assertTrue({"TooManyClauses", "DuplicateUpdateExpression", "UpdateHashRangeKeyException", "IncorrectOperandType", "InvalidUpdateExpressionInvalidDocumentPath"} <= errors, errors)
        self.assertGreater(sum(isinstance(o[0], str) for o in shipped), 6, "and updates that apply")

    CONDITIONS = [
        ("attribute_exists(taskId) AND #s IN (:a, :b) AND size(c) < :max", {"#s": "status"},
         [{":a": s("RECEIVED"), ":b": s("X"), ":max": {"N": "10"}}, {":a": s("NO"), ":b": s("X"), ":max": {"N": "10"}},
          {":a": s("RECEIVED"), ":b": s("X"), ":max": {"N": "2"}}, {":a": s("RECEIVED"), ":b": s("X"), ":max": {"N": "10"}}]),
        ("attribute_not_exists(taskId)", {}, [{}, {}]),
        ("n = :n OR contains(spare, :e)", {}, [{":n": {"N": "5"}}, {":n": {"N": "5.0"}, ":e": s("y")}, {":n": {"N": "4"}, ":e": s("q")}, {":n": {"N": "5"}, ":e": s("x")}]),
        ("m.k = :v AND begins_with(a, :p)", {}, [{":v": s("v"), ":p": s("o")}, {":v": s("v"), ":p": s("x")}]),
        ("#missing = :v", {}, [{":v": s("v")}]),
        ("a = :absent", {}, [{":v": s("v")}, {":absent": s("old")}]),
        ("size = :v", {}, [{":v": s("v")}]),
        ("a BETWEEN :lo AND :hi", {}, [{":lo": s("a"), ":hi": s("z")}, {":lo": s("p"), ":hi": s("z")}]),
    ]

    def conditions(self):
        from moto.dynamodb.comparisons import ConditionExpressionParser

        item = self.backend.get_item("other", {"taskId": s("t")})
        seen = []
        for expression, names, runs in self.CONDITIONS:
            for values in runs:
                parser = ConditionExpressionParser(expression, dict(names), json.loads(json.dumps(values)))
                try:
                    op = parser.parse()
                    seen.append((repr(op), op.expr(item), parser.expr_attr_names_found, parser.expr_attr_values_found))
                except Exception as error:  # the error is the outcome compared
                    seen.append((type(error).__name__, str(error)))
        return seen

    def test_conditions_are_moto_s_own(self):
        self.outcome("other", "SET a = :v", {}, {":v": s("old")})
        self.dynamodb_expressions.uninstall()
        shipped = self.conditions()
        self.dynamodb_expressions.install()
        ours = [self.conditions(), self.conditions()]  # the second from what the first kept
        self.assertEqual(shipped, ours[0])
        self.assertEqual(shipped, ours[1])
        self.assertEqual({o[1] for o in shipped if len(o) == 4}, {True, False}, "conditions that hold and that do not")
        self.assertTrue(any(len(o) == 2 for o in shipped), "and refused ones")

    def test_a_kept_condition_holds_no_value_a_request_owns(self):
        from moto.dynamodb.comparisons import ConditionExpressionParser

        values = {":l": {"L": [s("a")]}}
        ConditionExpressionParser("c = :l", {}, values).parse()
        values[":l"]["L"].append(s("b"))  # the request's own value, changed afterwards
        self.outcome("other", "SET c = :v", {}, {":v": {"L": [s("a")]}})
        item = self.backend.get_item("other", {"taskId": s("t")})
        op = ConditionExpressionParser("c = :l", {}, {":l": {"L": [s("a")]}}).parse()
        self.assertTrue(op.expr(item))

    def test_the_copy_is_the_deep_copy(self):
        import copy
        import pickle

        from moto.dynamodb.parsing.expressions import UpdateExpressionParser

        for expression, _, _ in self.CASES:
            try:
                tree = UpdateExpressionParser.make(expression)
            except Exception:  # noqa: BLE001 - a text that does not parse has no tree to copy
                continue
            kept, pickled = self.dynamodb_expressions._pickles[id(tree)]
            self.assertIs(kept, tree)
            self.assertEqual(UpdateExpressionsParsedOnce.dump(pickle.loads(pickled)), UpdateExpressionsParsedOnce.dump(copy.deepcopy(tree)), expression)


class AttributeNamesThatAreNotStrings(unittest.TestCase):
    """ExpressionAttributeNames is a map of strings (limits.py): anything else is a 400
    SerializationException, and the table keeps answering. A number as a name used to be stored
    as an attribute named by that number, after which every request on the table answered 500."""

    AUTH = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261130/eu-west-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"

    def setUp(self):
        import iam
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.test import Client

        mode, iam.MODE = iam.MODE, "off"
        self.addCleanup(setattr, iam, "MODE", mode)
        self.client = Client(DomainDispatcherApplication(create_backend_app))
        self.backend = dynamodb_backends[ACCOUNT][REGION]
        for name in list(self.backend.tables):
            self.backend.delete_table(name)
        self.call("CreateTable", {"TableName": "named", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                                  "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"})
        self.call("PutItem", {"TableName": "named", "Item": {"pk": s("a"), "n": {"N": "1"}}})

    def call(self, operation, body):
        answer = self.client.post("/", data=json.dumps(body), headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}", "Content-Type": "application/x-amz-json-1.0",
            "Authorization": self.AUTH, "X-Amz-Date": "20261130T120000Z", "Host": "dynamodb.eu-west-1.amazonaws.com"})
        return answer.status_code, json.loads(answer.data or b"{}")

    def update(self, names):
        return {"TableName": "named", "Key": {"pk": s("a")}, "UpdateExpression": "SET #a = :v",
                "ExpressionAttributeNames": names, "ExpressionAttributeValues": {":v": s("z")}}

    def test_refused_by_name_and_the_table_still_answers(self):
        for names in [{"#a": 1}, {"#a": True}, {"#a": ["x"]}, {"#a": {"x": "y"}}, {"#a": None}, ["#a"], "x"]:
            status, body = self.call("UpdateItem", self.update(names))
            self.assertEqual((status, body.get("__type")), (400, "SerializationException"), names)
        status, body = self.call("TransactWriteItems", {"TransactItems": [{"Update": self.update({"#a": 2})}]})
        self.assertEqual((status, body.get("__type")), (400, "SerializationException"))
        status, body = self.call("BatchGetItem", {"RequestItems": {"named": {"Keys": [{"pk": s("a")}], "ProjectionExpression": "#a", "ExpressionAttributeNames": {"#a": 3}}}})
        self.assertEqual((status, body.get("__type")), (400, "SerializationException"))
        self.assertEqual(self.call("GetItem", {"TableName": "named", "Key": {"pk": s("a")}}), (200, {"Item": {"pk": s("a"), "n": {"N": "1"}}}))
        self.assertEqual(self.call("UpdateItem", self.update({"#a": "q"}))[0], 200)
        status, body = self.call("Scan", {"TableName": "named"})
        self.assertEqual((status, body["Items"]), (200, [{"pk": s("a"), "n": {"N": "1"}, "q": s("z")}]))

    def test_an_update_that_fails_on_the_way_leaves_the_item_as_it_was(self):
        # Past the request check (the backend called directly): the size check cannot size an
        # attribute named by a number, and the update is undone, not left half applied.
        with self.assertRaises(Exception):
            self.backend.update_item("named", {"pk": s("a")}, "SET #a = :v, n = :n", {"#a": 1}, {":v": s("z"), ":n": {"N": "2"}})
        self.assertEqual(self.backend.get_item("named", {"pk": s("a")}).to_json()["Attributes"], {"pk": s("a"), "n": {"N": "1"}})
        self.assertEqual(self.call("Scan", {"TableName": "named"})[0], 200)


class ServicesServed(unittest.TestCase):
    """Each of the local stack's two processes serves its services only (`POST /taskflow/services`):
    a request signed for another is refused as another service's endpoint refuses it
    (InvalidSignatureException), not served from the process's unused copy of the stack."""

    def setUp(self):
        import iam
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.test import Client

        mode, iam.MODE = iam.MODE, "off"
        self.addCleanup(setattr, iam, "MODE", mode)
        served = dict(emulator._SERVES)
        self.addCleanup(emulator._SERVES.update, served)
        self.client = Client(DomainDispatcherApplication(create_backend_app))

    def bucket_notifying(self, bucket, queue):
        """A bucket whose object-created notifications go to a new queue (both removed after the
        test), with moto's test event already taken off the queue."""
        from moto.s3.models import s3_backends
        from moto.sqs.models import sqs_backends

        sqs = sqs_backends[ACCOUNT][REGION]
        sqs.create_queue(queue)
        self.addCleanup(sqs.delete_queue, queue)
        s3 = s3_backends[ACCOUNT]["aws"]
        s3.create_bucket(bucket, REGION)
        self.addCleanup(s3.delete_bucket, bucket)
        s3.put_bucket_notification_configuration(bucket, {"QueueConfiguration": [
            {"Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", "Event": ["s3:ObjectCreated:*"]}]})
        while sqs.receive_message(queue, 10, 0, 30):  # moto's test event
            pass

    def serve(self, which):
        answer = self.client.post("/taskflow/services", data=json.dumps(which))
        return answer.status_code, json.loads(answer.data)

    def auth(self, service):
        return f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261130/eu-west-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"

    def list_tables(self):
        answer = self.client.post("/", data="{}", headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
            "Authorization": self.auth("dynamodb"), "X-Amz-Date": "20261130T120000Z", "Host": "dynamodb.eu-west-1.amazonaws.com"})
        return answer.status_code, json.loads(answer.data)

    def list_queues(self):
        answer = self.client.post("/", data="Action=ListQueues&Version=2012-11-05", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Authorization": self.auth("sqs"),
            "X-Amz-Date": "20261130T120000Z", "Host": "sqs.eu-west-1.amazonaws.com"})
        return answer.status_code, answer.data

    def presigned_get(self, service):
        credential = f"AKIAIOSFODNN7EXAMPLE%2F20261130%2Feu-west-1%2F{service}%2Faws4_request"
        answer = self.client.get(f"/no-such-bucket/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Signature=00")
        return b"<Code>AuthorizationHeaderMalformed</Code>" in answer.data

    def test_the_dynamodb_process_refuses_other_services(self):
        self.assertEqual(self.serve({"only": ["dynamodb"]}), (200, {"only": ["dynamodb"], "except": [], "queueNotificationsTo": None}))
        self.assertEqual(self.list_tables()[0], 200)
        status, body = self.list_queues()
        self.assertEqual(status, 400)
        self.assertIn(b"InvalidSignatureException", body)
        self.assertIn(b"served at `endpoint`", body, "points at the process that serves it")
        self.assertTrue(self.presigned_get("s3"), "a presigned S3 URL names its service in the query")
        self.assertNotIn(b"InvalidSignatureException", self.client.get("/no-such-bucket/k").data, "unsigned: IAM's to refuse")
        self.assertEqual(self.client.get("/taskflow/usage").status_code, 200, "the emulator's own routes stay")

    def test_the_main_process_refuses_dynamodb_and_serves_the_rest(self):
        self.serve({"except": ["dynamodb"]})
        status, body = self.list_tables()
        self.assertEqual((status, body["__type"]), (400, "InvalidSignatureException"))
        self.assertIn("`storageEndpoint`", body["message"])
        self.assertEqual(self.list_queues()[0], 200)
        self.assertFalse(self.presigned_get("s3"), "served (S3 answers it: here, its presigned URL is incomplete)")

    def test_the_storage_process_serves_s3_and_anonymous_requests_the_main_one_refuses_them(self):
        self.serve({"only": ["dynamodb", "s3"]})
        self.assertFalse(self.presigned_get("s3"))
        self.assertEqual(self.list_queues()[0], 400)
        self.serve({"except": ["dynamodb", "s3"]})
        self.assertTrue(self.presigned_get("s3"))
        self.assertEqual(self.client.get("/taskflow/usage").status_code, 200)
        self.assertEqual(self.list_queues()[0], 200)

    def test_s3_notifications_to_a_queue_go_to_the_process_named(self):
        import threading

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from moto.sqs.models import sqs_backends
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.shutdown)
        sqs = sqs_backends[ACCOUNT][REGION]
        self.bucket_notifying("attachments-bucket-test", "attachments-test")
        self.assertEqual(self.serve({"only": ["dynamodb", "s3"], "queueNotificationsTo": f"http://127.0.0.1:{server.server_port}"})[0], 200)
        emulator._s3_notifications._send_sqs_message(ACCOUNT, {"Records": [{"s3": {"object": {"key": "k"}}}]}, "attachments-test", REGION)
        messages = sqs.receive_message("attachments-test", 10, 0, 30)
        self.assertEqual([json.loads(m.body) for m in messages], [{"Records": [{"s3": {"object": {"key": "k"}}}]}])
        # Nowhere to go: reported, not raised into the PutObject that sent it.
        self.serve({"only": ["dynamodb", "s3"], "queueNotificationsTo": "http://127.0.0.1:9"})
        emulator._s3_notifications._send_sqs_message(ACCOUNT, {"Records": []}, "attachments-test", REGION)
        self.assertEqual(self.serve({"queueNotificationsTo": "http://example.com"})[0], 400, "loopback only")

    def test_a_process_serves_everything_until_told(self):
        self.assertEqual(self.list_tables()[0], 200)
        self.assertEqual(self.list_queues()[0], 200)

    def test_a_malformed_choice_is_refused_and_changes_nothing(self):
        self.serve({"only": ["dynamodb"]})
        for bad in [{"only": "dynamodb"}, {"only": [1]}, {"serve": ["sqs"]}, ["dynamodb"]]:
            self.assertEqual(self.serve(bad)[0], 400, bad)
        self.assertEqual(self.client.post("/taskflow/services", data="garbage").status_code, 400)
        self.assertEqual(self.list_queues()[0], 400, "still dynamodb only")

    def test_a_credential_scope_is_read_as_moto_reads_it_to_route(self):
        # moto routes by the scope's fourth part whatever the date looks like; so does the check.
        self.serve({"except": ["dynamodb", "s3"]})
        for auth in ["AWS4-HMAC-SHA256 Credential=test/2026113/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
                     "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/s3/x, SignedHeaders=host, Signature=00"]:
            answer = self.client.put("/bucket/k", data=b"x", headers={"Authorization": auth})
            self.assertEqual(answer.status_code, 400, auth)
            self.assertIn(b"<Code>AuthorizationHeaderMalformed</Code>", answer.data, "an S3 client reads XML")
        answer = self.client.post("/", data="{}", headers={"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/dynamodb/x",
                                                           "X-Amz-Target": "DynamoDB_20120810.ListTables"})
        self.assertEqual(json.loads(answer.data)["__type"], "InvalidSignatureException")
        answer = self.client.put("/bucket/k", data=b"x", headers={"Authorization": "AWS4-HMAC-SHA256 nonsense"})
        self.assertEqual(answer.status_code, 400, "a header moto cannot read a service from")
        self.assertIn(b"malformed", answer.data)

    def test_only_a_buckets_notification_queue_takes_a_handed_on_notification(self):
        from moto.sqs.models import sqs_backends

        sqs = sqs_backends[ACCOUNT][REGION]
        self.bucket_notifying("notifying-test", "uploads-test")
        sqs.create_queue("intake-test")
        self.addCleanup(sqs.delete_queue, "intake-test")

        def hand_on(note):
            answer = self.client.post("/taskflow/s3-notifications", data=json.dumps(note))
            return answer.status_code, json.loads(answer.data)

        note = {"account": ACCOUNT, "region": REGION, "queue": "uploads-test", "body": {"Records": []}}
        self.assertEqual(hand_on(note), (200, {"delivered": "uploads-test"}))
        self.assertEqual(len(sqs.receive_message("uploads-test", 10, 0, 30)), 1)
        self.assertEqual(hand_on({**note, "queue": "intake-test"})[0], 400, "not a notification target: refused")
        self.assertEqual(sqs.receive_message("intake-test", 10, 0, 30), [])
        self.assertEqual(hand_on({"queue": "uploads-test"})[0], 400)
        self.assertEqual(self.client.post("/taskflow/s3-notifications", data="garbage").status_code, 400)


class EventBridgeRulesChangedDuringPutEvents(unittest.TestCase):
    """PutEvents while rules are added and removed: every call answers (moto alone failed with
    "OrderedDict mutated during iteration", and the caller's retry delivered the event twice)."""

    def test_rules_added_and_removed_during_put_events_fail_no_call(self):
        import sys
        import threading
        from moto.events.models import events_backends

        backend = events_backends[ACCOUNT][REGION]
        pattern = json.dumps({"source": ["never.matches"]})
        for i in range(200):
            backend.put_rule(f"steady-{i}", event_pattern=pattern, event_bus_arn=None, state="ENABLED",
                             description=None, role_arn=None, tags=[], scheduled_expression=None)
        failures, stop = [], threading.Event()

        def churn():
            i = 0
            while not stop.is_set():
                try:
                    backend.put_rule(f"churn-{i}", event_pattern=pattern, event_bus_arn=None, state="ENABLED",
                                     description=None, role_arn=None, tags=[], scheduled_expression=None)
                    backend.delete_rule(f"churn-{i}", None)
                except Exception as e:  # noqa: BLE001 - every failure is the finding
                    failures.append(repr(e))
                i += 1

        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads often, so that the race shows at once
        thread = threading.Thread(target=churn)
        thread.start()
        try:
            for _ in range(300):
                try:
                    backend.put_events([{"Source": "taskflow.test", "DetailType": "T", "Detail": "{}", "EventBusName": "default"}])
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))
        finally:
            stop.set()
            thread.join()
            sys.setswitchinterval(switch)
            for i in range(200):
                backend.delete_rule(f"steady-{i}", None)
        self.assertEqual(failures, [])


class TaskTokenAnsweredWhileAnExecutionStarts(unittest.TestCase):
    """An execution moto lists as RUNNING before it has its worker (it is being started) does not
    turn an answer to another execution's token into HTTP 500: the token is looked up elsewhere."""

    def test_an_execution_without_its_worker_yet_is_skipped(self):
        from types import SimpleNamespace

        from moto.stepfunctions.parser.api import ExecutionStatus, InvalidToken
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
        machine = backend.create_state_machine(name="starting", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")
        machine.executions.append(SimpleNamespace(status=ExecutionStatus.RUNNING, exec_worker=None))
        try:
            with self.assertRaises(InvalidToken):
                backend.send_task_success(task_token="not-issued", outcome="{}")
            with self.assertRaises(InvalidToken):
                backend.send_task_heartbeat(task_token="not-issued")
            with self.assertRaises(InvalidToken):
                backend.send_task_failure(task_token="not-issued")
        finally:
            machine.executions.pop()


class TaskTokenAnsweredBeforeTheWait(unittest.TestCase):
    """moto sets up a task's heartbeat clock after sending its message: an answer (or a
    heartbeat) that came first is not lost."""

    def test_an_answer_before_the_clock_is_set_up_ends_the_wait_at_once(self):
        from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackOutcomeSuccess

        endpoint = CallbackEndpoint(callback_id="t")
        self.assertTrue(endpoint.notify_heartbeat(), "a heartbeat before the clock exists is accepted")
        endpoint.notify(CallbackOutcomeSuccess(callback_id="t", output="{}"))
        clock = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=3)
        # At once (without the fix it waited out the clock and returned False: answer missed).
        self.assertTrue(clock.clear_and_wait())
        self.assertIsNotNone(endpoint.get_outcome())

    def test_a_clock_set_up_before_the_answer_waits_for_it(self):
        from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

        endpoint = CallbackEndpoint(callback_id="t")
        clock = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=0.05)
        self.assertFalse(clock.clear_and_wait(), "no answer, no heartbeat: the clock runs out")
        self.assertTrue(endpoint.notify_heartbeat())
        self.assertTrue(clock.clear_and_wait())


class AttributeValuesAnswered(unittest.TestCase):
    """emulator._wire writes attribute values out as moto's model-driven serializer does: the
    same answer, byte for byte, for items of every type (and what it leaves to moto's walk)."""

    ITEM = {
        "taskId": {"S": "t-1"},
        "empty": {"S": ""},
        "unicode": {"S": "Zoë ✓ \u0000 \"quoted\""},
        "amount": {"N": "3499"},
        "fraction": {"N": "-0.125e3"},
        "flag": {"BOOL": False},
        "yes": {"BOOL": True},
        "nothing": {"NULL": True},
        "history": {"L": [{"M": {"status": {"S": "RECEIVED"}, "at": {"S": "2026-11-30T10:00:00Z"}}}, {"L": []}, {"M": {}}]},
        "nested": {"M": {"a": {"M": {"b": {"L": [{"N": "1"}, {"SS": ["x", "y"]}, {"NULL": True}]}}}}},
        "tags": {"SS": ["a", "b", ""]},
        "numbers": {"NS": ["1", "2.5"]},
        "blob": {"B": b"\x00\x01binary"},
        "blobs": {"BS": [b"one", b"two"]},
        "nestedBlob": {"M": {"inner": {"B": b"\xff"}}},
    }

    def answer(self, service, operation, result, wire):
        from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class
        from moto.core.utils import get_service_model

        model = get_service_model(service)
        serializer = get_serializer_class(model.service_name, model.metadata["protocol"])(
            operation_model=model.operation_model(operation), pretty_print=False, value_picker=XFormedAttributePicker())
        saved = BaseJSONSerializer._serialize_type_structure
        if not wire:
            BaseJSONSerializer._serialize_type_structure = emulator._serialize_structure
        try:
            return serializer.serialize(result)["body"]
        finally:
            BaseJSONSerializer._serialize_type_structure = saved

    def assert_same(self, service, operation, result):
        fast = self.answer(service, operation, result, wire=True)
        self.assertEqual(fast, self.answer(service, operation, result, wire=False))
        return json.loads(fast)

    def test_get_item_answers_every_type_as_moto_would(self):
        answer = self.assert_same("dynamodb", "GetItem", {"Item": self.ITEM})
        # The fast path answered every value but the binary ones (not left to moto's walk).
        for name, value in self.ITEM.items():
            if "blob" not in name.lower():
                self.assertEqual(emulator._wire(value), value, name)
        self.assertEqual(answer["Item"]["history"]["L"][0]["M"]["status"], {"S": "RECEIVED"})
        self.assertEqual(answer["Item"]["flag"], {"BOOL": False})

    def test_update_and_batch_answers_as_moto_would(self):
        self.assert_same("dynamodb", "UpdateItem", {"Attributes": self.ITEM, "ConsumedCapacity": {"TableName": "tasks", "CapacityUnits": 0.5}})
        self.assert_same("dynamodb", "BatchGetItem", {"Responses": {"tasks": [self.ITEM, {"taskId": {"S": "t-2"}}]}, "UnprocessedKeys": {}})
        self.assert_same("dynamodb", "Query", {"Items": [self.ITEM], "Count": 1, "ScannedCount": 1, "LastEvaluatedKey": {"taskId": {"S": "t-1"}}})

    def test_stream_records_answer_as_moto_would(self):
        import datetime

        record = {"eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": REGION,
                  "dynamodb": {"ApproximateCreationDateTime": datetime.datetime(2026, 11, 30, 10, 0, 0), "Keys": {"taskId": {"S": "t-1"}},
                               "NewImage": self.ITEM, "OldImage": {"taskId": {"S": "t-1"}, "amount": {"N": "1"}},
                               "SequenceNumber": "100", "SizeBytes": 123, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
        self.assert_same("dynamodbstreams", "GetRecords", {"Records": [record, record], "NextShardIterator": "it"})

    def test_what_is_not_wire_form_is_left_to_moto(self):
        for value in [{"B": b"x"}, {"S": "a", "N": "1"}, {}, {"S": None}, {"S": []}, {"L": "not a list"}, {"SS": ["a", None]}, "plain", None]:
            with self.assertRaises(emulator._NotWireForm, msg=repr(value)):
                emulator._wire(value)
        # ...and moto's walk then answers them as it always did.
        self.assert_same("dynamodb", "GetItem", {"Item": {"odd": {"S": "a", "N": "1"}, "none": {"S": None}, "list": {"SS": ["a", None]}}})


class SurvivorsFrozenAfterAFullCollection(unittest.TestCase):
    """What survives a full collection is frozen before the next request (emulator.py, `gc.freeze`),
    so later full collections walk only what came since."""

    def test_a_full_collection_freezes_its_survivors_at_the_next_request(self):
        import gc

        from werkzeug.test import Client

        survivors = [[i] for i in range(1000)]  # (lists are always tracked; dicts of ints are not)
        emulator._FREEZE["pending"] = False  # (importing the emulator ran a full collection)
        gc.collect(0)
        self.assertFalse(emulator._FREEZE["pending"], "a young collection freezes nothing")
        gc.collect()
        self.assertTrue(emulator._FREEZE["pending"], "a full collection marks its survivors to be frozen")
        frozen = gc.get_freeze_count()
        answer = Client(emulator.DomainDispatcherApplication(None)).get("/taskflow/usage")
        self.assertEqual(answer.status_code, 200)
        self.assertFalse(emulator._FREEZE["pending"])
        self.assertGreaterEqual(gc.get_freeze_count(), frozen + len(survivors), "the survivors were frozen")
        gc.unfreeze()


if __name__ == "__main__":
    unittest.main()
