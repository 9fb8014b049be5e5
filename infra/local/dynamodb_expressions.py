"""moto's DynamoDB expressions, made cheaper without changing what the emulator answers.

Every UpdateItem (and every Update of a transaction) goes through moto's UpdateExpression parser
and validator (`moto/dynamodb/parsing/`): under the bench's load the three UpdateItems of a
purchase were the largest cost of the emulator that only taskflow's workers make and the null
workers' stack does not (BENCH_ONLY=steady, 2026-11-30: 3 x 4.65 ms of request CPU an order).
Measured in-process on the task transition's UpdateItem (request through moto's WSGI app, put of
the item first): put + update ~4.4 -> ~3.8 ms with 1.-4. (1. was there before), ~2.85 ms with 5.
too; under the bench's load, UpdateItem 4.65 -> 2.70 ms. What changes, and why the answer cannot:

1. The syntax tree is kept per text (`parsed`). moto parses an UpdateExpression twice per
   UpdateItem (its request handler, to find the names and values it uses; its backend, to run it),
   each time tokenizing and building the tree from the text, though the workers send a few dozen
   distinct texts (the values are placeholders). The tree of a text is the same every time.
   Nothing writes to a kept tree: the handler only reads it (`find_clauses`), and the validator
   fills in a copy (2.). A text that does not parse raises as before (errors are not kept). At
   most `KEPT` texts are kept; later texts are parsed each time, as moto does.
2. The validator's copy of the tree is made from the tree's pickle, taken when it was kept,
   instead of by `copy.deepcopy` (`Validator.__init__`): the same objects (pickle and deepcopy
   both rebuild plain objects through `__reduce_ex__`; a parse tree holds only syntax nodes and
   strings, no values), about ten times faster. A tree that was not kept is deep-copied as before.
3. Three of the validator's ten passes only check, and what they check is fixed by the text, the
   expression attribute names and the table's key attributes: one SET/REMOVE/ADD/DELETE clause
   each (`ActionCountValidator`), no two actions on overlapping paths
   (`OverlappingPathsValidator`), no update of a key attribute (`UpdateHashRangeKeyValidator`).
   moto runs each over every node of the tree, `ActionCountValidator` and
   `OverlappingPathsValidator` searching each node's whole subtree (quadratic in the number of
   actions). Once an expression passed them with some names on some table's keys, they are
   skipped for the same kept tree, names and keys. A failing expression is checked every time,
   so it fails with the same error every time.
4. moto's traversal (`DepthFirstTraverser.traverse_node_recursively`) asks, for every node and
   every pass, `isinstance` against abstract classes (moto's `Node` is an `abc.ABCMeta` class)
   and rebuilds the pass's processing map to do so. The same question is answered once per
   (pass class, node class): the map's keys are classes fixed in each pass's code, and no class is
   registered as a virtual subclass of `Node`. The walk itself, its order and what each pass does
   to each node are moto's.

5. A ConditionExpression (and a FilterExpression: the same parser) is parsed once per text, names
   and values. moto parses a write's condition twice (handler and backend, `ConditionExpression
   Parser.parse`, lexing the text character class by character class each time): ~0.35 ms each,
   as much as the whole validator above once it is cheaper. The result (an `Op` tree, moto's
   `comparisons.py`) depends on the text, the names and the values of the placeholders the text
   looks up, nothing else; it is evaluated against an item without being changed. It is kept per
   text and names, with the looked-up values it was built from (copies, so that no request can
   change them), and handed out only to a parse whose looked-up values are equal. A transition's
   condition (`#status IN (:from0) AND size(history) < :maxHistory`) is the same few values for
   every order. Errors are not kept, and at most `KEPT` conditions are.

`test_emulator.py` runs a set of expressions, valid and refused, through moto's code as shipped
and through this, and compares the items and errors.
"""

import copy
import json
import pickle
import threading

from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing import ast_nodes, validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

KEPT = 512
CHECKED = 4096

_parse = UpdateExpressionParser.make.__func__
_deepcopy_validator_init = validators.Validator.__init__
_validate = validators.Validator.validate
_traverse = ast_nodes.DepthFirstTraverser.traverse_node_recursively
_parse_condition = ConditionExpressionParser.parse
_lookup_value = ConditionExpressionParser._lookup_expression_attribute_value

_lock = threading.Lock()
_trees = {}  # text -> kept tree
_pickles = {}  # id(kept tree) -> (kept tree, its pickle); the tree held so that its id stays its own
_checked = set()  # (id(kept tree), names, key attributes) that passed the checks of 3.
_CHECKS_ONLY = (validators.ActionCountValidator, validators.OverlappingPathsValidator, validators.UpdateHashRangeKeyValidator)


def parsed(cls, expression):
    """`UpdateExpressionParser.make`, the tree kept per text (1.)."""
    tree = _trees.get(expression)
    if tree is not None:
        return tree
    tree = _parse(cls, expression)
    with _lock:
        if expression in _trees:
            return _trees[expression]
        if len(_trees) >= KEPT:
            return tree
        _pickles[id(tree)] = (tree, pickle.dumps(tree, pickle.HIGHEST_PROTOCOL))
        _trees[expression] = tree
    return tree


def _frozen(names):
    """ExpressionAttributeNames as part of a key; None when a name cannot be one (not a string:
    limits.py refuses those on a request; then nothing is kept)."""
    try:
        return frozenset((names or {}).items())
    except TypeError:
        return None


def _checked_key(expression, names, table):
    kept = _pickles.get(id(expression))
    if kept is None or kept[0] is not expression:
        return None, None
    frozen = _frozen(names)
    return kept[1], (id(expression), frozen, tuple(table.table_key_attrs)) if frozen is not None else None


def validator_init(self, expression, expression_attribute_names, expression_attribute_values, item, table):
    """`Validator.__init__`: the copy from the kept tree's pickle (2.), the checks skipped once
    passed (3.); anything else as moto does it."""
    pickled, key = _checked_key(expression, expression_attribute_names, table) if isinstance(self, validators.UpdateExpressionValidator) else (None, None)
    if pickled is None:
        _deepcopy_validator_init(self, expression, expression_attribute_names, expression_attribute_values, item, table)
        self.checked_key = None
        return
    self.expression_attribute_names = expression_attribute_names
    self.expression_attribute_values = expression_attribute_values
    self.item = item
    self.table = table
    self.processors = self.get_ast_processors()
    self.node_to_validate = pickle.loads(pickled)
    self.checked_key = key
    if key is not None and key in _checked:
        self.processors = [p for p in self.processors if not isinstance(p, _CHECKS_ONLY)]


def validate(self):
    """`Validator.validate`, noting a kept tree whose checks passed (3.)."""
    key = getattr(self, "checked_key", None)
    node = self.node_to_validate
    for processor in self.processors:
        node = processor.traverse(node)
        if key is not None and isinstance(processor, validators.UpdateHashRangeKeyValidator) and len(_checked) < CHECKED:
            # The last of the three, in moto's order: all three passed.
            _checked.add(key)
    return node


_is_node = {}  # node class -> is a Node
_processes = {}  # (pass class, node class) -> the pass processes it


def traverse_node_recursively(self, node, child_id=-1):
    """moto's `DepthFirstTraverser.traverse_node_recursively`, line for line, with its two
    `isinstance` questions answered once per class (4.)."""
    node_class = type(node)
    is_node = _is_node.get(node_class)
    if is_node is None:
        is_node = _is_node[node_class] = issubclass(node_class, ast_nodes.Node)
    if is_node:
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        pair = (type(self), node_class)
        processed = _processes.get(pair)
        if processed is None:
            processed = _processes[pair] = issubclass(node_class, self.nodes_to_be_processed())
        if processed:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
    return node


_conditions = {}  # (text, names) -> (op, names found, values found, {placeholder: the value it was built from})
_MISSING = object()


def _looked_up(self, name):
    """moto's `_lookup_expression_attribute_value`, noting which placeholder the parse read."""
    value = _lookup_value(self, name)
    looked_up = getattr(self, "looked_up", None)
    if looked_up is not None:
        looked_up[name] = value
    return value


def parse_condition(self):
    """`ConditionExpressionParser.parse`, kept per text, names and looked-up values (5.)."""
    frozen = _frozen(self.expression_attribute_names)
    values = self.expression_attribute_values or {}
    if frozen is None or not isinstance(values, dict):
        return _parse_condition(self)
    key = (self.condition_expression, frozen)
    kept = _conditions.get(key)
    if kept is not None:
        op, names_found, values_found, used = kept
        if all(values.get(name, _MISSING) == value for name, value in used.items()):
            self.expr_attr_names_found.extend(names_found)
            self.expr_attr_values_found.extend(values_found)
            return op
    # Parsed from copies of the values, so that the kept tree holds nothing a request owns.
    own = self.expression_attribute_values
    self.expression_attribute_values = copy.deepcopy(own)
    self.looked_up = {}
    try:
        op = _parse_condition(self)
        used = self.looked_up
    finally:
        self.expression_attribute_values, self.looked_up = own, None
    if len(_conditions) < KEPT and len(json.dumps(used, default=str)) <= 4096:
        _conditions[key] = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found), copy.deepcopy(used))
    return op


def _patches():
    """(owner, attribute, this module's, moto's as shipped) for each change above."""
    return [
        (ConditionExpressionParser, "parse", parse_condition, _parse_condition),
        (ConditionExpressionParser, "_lookup_expression_attribute_value", _looked_up, _lookup_value),
        (UpdateExpressionParser, "make", classmethod(parsed), classmethod(_parse)),
        (validators.Validator, "__init__", validator_init, _deepcopy_validator_init),
        (validators.Validator, "validate", validate, _validate),
        (ast_nodes.DepthFirstTraverser, "traverse_node_recursively", traverse_node_recursively, _traverse),
    ]


def install():
    for owner, name, ours, _ in _patches():
        setattr(owner, name, ours)


def uninstall():
    """moto as shipped (for the tests that compare the two)."""
    for owner, name, _, shipped in _patches():
        setattr(owner, name, shipped)
