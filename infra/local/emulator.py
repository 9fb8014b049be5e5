"""The local AWS emulator: the pinned moto server, with DynamoDB made atomic.

moto serves requests on many threads but its DynamoDB backend has no lock. A cancelled
TransactWriteItems rolls back by putting back a copy of every table it touched, taken when it
started, so every write other requests made to those tables in between is lost. Under load (a
repeated reservation cancels while other orders reserve the same sku) stock decrements vanish.
DynamoDB itself never loses a committed write, so the emulator must not either: every DynamoDB
operation here runs under one lock, which is what makes a transaction (and a read-modify-write
update) atomic and isolated, as on AWS. Everything else is moto as installed.

Run as `python emulator.py -H 127.0.0.1 -p PORT`; the arguments are moto_server's.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()

# Every operation that reads or writes items: writes so that none is lost, reads so that none
# sees a transaction half applied.
_ATOMIC = [
    "put_item", "get_item", "update_item", "delete_item", "query", "scan",
    "transact_write_items", "transact_get_items", "batch_get_item", "batch_write_item",
    "execute_statement", "execute_transaction", "batch_execute_statement",
]


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


for _name in _ATOMIC:
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
