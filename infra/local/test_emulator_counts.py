"""Unit tests of the emulator's Step Functions call counts (emulator.py), which `make bench`'s
capacity model divides the throttling quotas by. Run:
`.venv/bin/python -m unittest discover -s infra/local -p 'test_*.py'`."""

import unittest

import emulator
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

ACCOUNT = "123456789012"
MACHINE = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:absent"


class StepFunctionsCalls(unittest.TestCase):
    def setUp(self):
        emulator._usage.clear()

    def counts(self):
        return {k: v for k, v in emulator._usage.items() if k.startswith("states.")}

    def test_each_call_counts_once_in_its_bucket_even_when_refused(self):
        # Refused calls (no such machine, no such token) take a token on AWS too.
        for backend in (StepFunctionsParserBackend("us-east-1", ACCOUNT), StepFunctionBackend("us-east-1", ACCOUNT)):
            with self.assertRaises(Exception):
                backend.start_execution(MACHINE, name="x", execution_input="{}")
            for call in (lambda: backend.send_task_success("token", "{}"),
                         lambda: backend.send_task_failure("token"),
                         lambda: backend.send_task_heartbeat("token")):
                try:
                    call()
                except Exception:
                    pass
        self.assertEqual(self.counts(), {
            "states.StartExecution": 2, "states.SendTaskSuccess": 2,
            "states.SendTaskFailure": 2, "states.SendTaskHeartbeat": 2,
        })

    def test_every_counted_call_is_a_method_of_the_backends(self):
        for name, _ in emulator.STATES_CALLS:
            self.assertTrue(callable(getattr(StepFunctionsParserBackend, name)), name)


if __name__ == "__main__":
    unittest.main()
