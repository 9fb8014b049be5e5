"""Unit tests of lint.py's checks: each passes on the template and fails on the mistake it is
for (today's template before the fix, or a broken copy). Run by `make lint`:

    cd infra/local && ../../.venv/bin/python -m unittest -q test_lint
"""

import os
import tempfile
import unittest

import lint
from deploy import translate

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "template.yaml")


def text():
    with open(TEMPLATE) as f:
        return f.read()


def cfn_of(template_text):
    """The template after the SAM transform, written beside the real one (DefinitionUri is relative)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=os.path.dirname(TEMPLATE), delete=False) as f:
        f.write(template_text)
    try:
        cfn, _, definitions, _ = translate(f.name, [], "us-east-1")
        return cfn, definitions, f.name
    finally:
        os.remove(f.name)


def edited(old, new):
    t = text()
    assert old in t, f"the template no longer contains {old!r}: update this test"
    return t.replace(old, new)


class AlarmTopics(unittest.TestCase):
    def test_the_template_passes(self):
        problems, topics = lint.alarm_problems(cfn_of(text())[0])
        self.assertEqual((problems, topics), ([], 1))

    def test_the_aws_managed_sns_key_fails(self):
        # What main had: KmsMasterKeyId: alias/aws/sns.
        cfn = cfn_of(edited("KmsMasterKeyId: !GetAtt AlarmTopicKey.Arn", "KmsMasterKeyId: alias/aws/sns"))[0]
        problems, _ = lint.alarm_problems(cfn)
        self.assertEqual(len(problems), 1)
        self.assertIn("alias/aws/sns", problems[0])

    def test_a_key_whose_policy_does_not_grant_cloudwatch_fails(self):
        cfn = cfn_of(edited("Principal: { Service: cloudwatch.amazonaws.com }", "Principal: { Service: events.amazonaws.com }"))[0]
        problems, _ = lint.alarm_problems(cfn)
        self.assertEqual(len(problems), 1)
        self.assertIn("cloudwatch.amazonaws.com", problems[0])

    def test_a_grant_without_generate_data_key_fails(self):
        cfn = cfn_of(edited("Action: [kms:Decrypt, kms:GenerateDataKey*]", "Action: [kms:Decrypt]"))[0]
        self.assertEqual(len(lint.alarm_problems(cfn)[0]), 1)

    def test_a_key_from_outside_the_template_cannot_be_checked(self):
        cfn = cfn_of(edited("KmsMasterKeyId: !GetAtt AlarmTopicKey.Arn", "KmsMasterKeyId: alias/someone-elses"))[0]
        self.assertEqual(len(lint.alarm_problems(cfn)[0]), 1)


class LogGroups(unittest.TestCase):
    def test_the_template_passes(self):
        problems, checked = lint.log_problems(cfn_of(text())[0])
        self.assertEqual(problems, [])
        self.assertEqual(checked, 3)  # the HTTP API's access log and both workflows' logs

    def test_an_access_log_group_outside_vendedlogs_fails(self):
        # What main had: /aws/http-api/taskflow-${Stage}.
        cfn = cfn_of(edited("LogGroupName: !Sub /aws/vendedlogs/http-api/taskflow-${Stage}", "LogGroupName: !Sub /aws/http-api/taskflow-${Stage}"))[0]
        problems, _ = lint.log_problems(cfn)
        self.assertEqual(len(problems), 1)
        self.assertIn("HttpApi", problems[0])

    def test_a_workflow_log_group_outside_vendedlogs_fails(self):
        cfn = cfn_of(edited("LogGroupName: !Sub /aws/vendedlogs/states/taskflow-${Stage}-refund", "LogGroupName: !Sub /aws/states/taskflow-${Stage}-refund"))[0]
        problems, _ = lint.log_problems(cfn)
        self.assertEqual(len(problems), 1)
        self.assertIn("RefundWorkflow", problems[0])


class CallbackSeconds(unittest.TestCase):
    def test_the_rule(self):
        # The template's defaults: 240 s of queue wait, 60 s visibility, 5 deliveries, 10 s
        # function timeout, 20 s longest backoff, 15 s claim hold, a beat every 20 s.
        self.assertEqual(lint.callback_budget(240, 60, 5, 10, 20, 15, 20), (320, 1500))
        # Visibility below work + backoff: the backoff sets how long a message is away.
        self.assertEqual(lint.callback_budget(30, 10, 3, 10, 5, 15, 5), (30 + 25 + 5, 3 * 55))

    def check(self, template_text):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=os.path.dirname(TEMPLATE), delete=False) as f:
            f.write(template_text)
        try:
            return lint.callback_problems(f.name)[0]
        finally:
            os.remove(f.name)

    def test_the_template_passes(self):
        self.assertEqual(self.check(text()), [])
        cfn, definitions, _ = cfn_of(text())
        self.assertEqual(lint.placeholder_problems(cfn, definitions), [])

    def test_mains_fixed_60_second_heartbeat_fails(self):
        problems = self.check(edited("  CallbackHeartbeatSeconds:\n    Type: Number\n    Default: 320", "  CallbackHeartbeatSeconds:\n    Type: Number\n    Default: 60"))
        self.assertEqual(len(problems), 1)
        self.assertIn("CallbackHeartbeatSeconds 60 < 320", problems[0])

    def test_a_bigger_budget_without_bigger_seconds_fails(self):
        problems = self.check(edited("  QueueWaitBudgetSeconds:\n    Type: Number\n    Default: 240", "  QueueWaitBudgetSeconds:\n    Type: Number\n    Default: 600"))
        self.assertEqual(len(problems), 2)

    def test_a_step_with_a_literal_heartbeat_fails(self):
        cfn, definitions, _ = cfn_of(text())
        spec = definitions["PurchaseWorkflow"]
        spec["text"] = spec["text"].replace('"HeartbeatSeconds": ${CallbackHeartbeatSeconds}', '"HeartbeatSeconds": 60', 1)
        problems = lint.placeholder_problems(cfn, definitions)
        self.assertEqual(len(problems), 1)
        self.assertIn("PurchaseWorkflow", problems[0])


if __name__ == "__main__":
    unittest.main()
