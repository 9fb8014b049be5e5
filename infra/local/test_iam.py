"""Unit tests of the local IAM check (iam.py): which actions and resources a request needs, and
how a role's policies decide. Run: `.venv/bin/python -m unittest discover -s infra/local -p 'test_*.py'`."""

import io
import json
import unittest

import iam

REGION = "us-east-1"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/"


def needs(target, body, service="dynamodb"):
    return iam.needs({"HTTP_X_AMZ_TARGET": target}, service, REGION, json.dumps(body).encode())


class Mapping(unittest.TestCase):
    def test_item_operations_are_on_the_table_and_index_queries_on_the_index(self):
        self.assertEqual(needs("DynamoDB_20120810.GetItem", {"TableName": "t"}), [("dynamodb:GetItem", TABLE + "t")])
        self.assertEqual(needs("DynamoDB_20120810.Query", {"TableName": "t", "IndexName": "byOwner"}), [("dynamodb:Query", TABLE + "t/index/byOwner")])

    def test_transactions_are_checked_per_item_by_the_underlying_action(self):
        body = {"TransactItems": [
            {"Update": {"TableName": "inventory"}}, {"Put": {"TableName": "ledger"}},
            {"ConditionCheck": {"TableName": "tasks"}}, {"Delete": {"TableName": "x"}},
        ]}
        self.assertEqual(needs("DynamoDB_20120810.TransactWriteItems", body), [
            ("dynamodb:UpdateItem", TABLE + "inventory"), ("dynamodb:PutItem", TABLE + "ledger"),
            ("dynamodb:ConditionCheckItem", TABLE + "tasks"), ("dynamodb:DeleteItem", TABLE + "x"),
        ])
        self.assertEqual(needs("DynamoDB_20120810.BatchGetItem", {"RequestItems": {"a": {}, "b": {}}}),
                         [("dynamodb:BatchGetItem", TABLE + "a"), ("dynamodb:BatchGetItem", TABLE + "b")])

    def test_stream_reads_are_on_the_stream_even_by_shard_iterator(self):
        stream = TABLE + "tasks/stream/2026-01-01T00:00:00.000"
        self.assertEqual(needs("DynamoDBStreams_20120810.GetRecords", {"ShardIterator": stream + "|1|abc"}), [("dynamodb:GetRecords", stream)])
        self.assertEqual(needs("DynamoDBStreams_20120810.DescribeStream", {"StreamArn": stream}), [("dynamodb:DescribeStream", stream)])

    def test_ses_send_email_is_on_the_sender_identity_and_the_configuration_set(self):
        body = json.dumps({"FromEmailAddress": "Taskflow <notices@example.com>", "ConfigurationSetName": "taskflow-local-notices",
                           "Destination": {"ToAddresses": ["a@example.com"]}}).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v2/email/outbound-emails"}
        self.assertEqual(iam.needs(environ, "ses", REGION, body), [
            ("ses:SendEmail", "arn:aws:ses:us-east-1:123456789012:identity/notices@example.com"),
            ("ses:SendEmail", "arn:aws:ses:us-east-1:123456789012:configuration-set/taskflow-local-notices"),
        ])
        self.assertIsNone(iam.needs({"REQUEST_METHOD": "GET", "PATH_INFO": "/v2/email/identities"}, "ses", REGION, b""))

    def test_cognito_user_pool_operations_are_on_the_pool(self):
        self.assertEqual(needs("AWSCognitoIdentityProviderService.ListUsers", {"UserPoolId": "us-east-1_abc"}, "cognito-idp"),
                         [("cognito-idp:ListUsers", "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc")])

    def test_sqs_batches_need_their_single_actions_on_the_queue(self):
        url = "https://sqs.us-east-1.amazonaws.com/123456789012/work"
        self.assertEqual(needs("AmazonSQS.DeleteMessageBatch", {"QueueUrl": url}, "sqs"), [("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:work")])
        form = b"Action=SendMessageBatch&QueueUrl=" + url.encode()
        self.assertEqual(iam.needs({}, "sqs", REGION, form), [("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:work")])

    def test_put_events_is_on_each_entry_bus_and_the_default_bus_when_unnamed(self):
        body = {"Entries": [{"EventBusName": "taskflow-local"}, {}]}
        self.assertEqual(needs("AWSEvents.PutEvents", body, "events"), [
            ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/default"),
            ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/taskflow-local"),
        ])

    def test_s3_objects_and_unknown_requests(self):
        self.assertEqual(iam.needs({"REQUEST_METHOD": "PUT", "PATH_INFO": "/b/receipts/o%201.json"}, "s3", REGION, b""), [("s3:PutObject", "arn:aws:s3:::b/receipts/o 1.json")])
        self.assertEqual(iam.needs({"REQUEST_METHOD": "GET", "PATH_INFO": "/b"}, "s3", REGION, b""), [("s3:ListBucket", "arn:aws:s3:::b")])
        self.assertIsNone(iam.needs({"HTTP_X_AMZ_TARGET": "Unknown_1.Op"}, "x", REGION, b"{}"))

    def test_the_xray_otlp_endpoint_needs_put_spans(self):
        # POST /v1/traces signed for `xray` (the local OTLP endpoint replays it to the emulator).
        self.assertEqual(iam.needs({"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/traces"}, "xray", REGION, b"\x0a\x00"), [("xray:PutSpans", "*")])
        self.assertEqual(iam.needs({"REQUEST_METHOD": "POST", "PATH_INFO": "/TraceSegments"}, "xray", REGION, b"{}"), [("xray:PutTraceSegments", "*")])


def identity(*statements):
    return iam.Identity({"accessKeyId": "K", "name": "f", "roleArn": "arn:aws:iam::123456789012:role/R",
                         "policies": [{"Version": "2012-10-17", "Statement": list(statements)}]})


class Evaluation(unittest.TestCase):
    def test_action_and_resource_must_both_match(self):
        role = identity({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE + "tasks"})
        self.assertTrue(role.allows("dynamodb:GetItem", TABLE + "tasks"))
        self.assertFalse(role.allows("dynamodb:GetItem", TABLE + "charges"))
        self.assertFalse(role.allows("dynamodb:PutItem", TABLE + "tasks"))
        self.assertFalse(role.allows("dynamodb:Query", TABLE + "tasks/index/byOwner"), "a table grant is not an index grant")

    def test_wildcards_case_and_explicit_deny(self):
        role = identity(
            {"Effect": "Allow", "Action": "S3:PutObject", "Resource": "arn:aws:s3:::b/receipts/*"},
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE + "*"},
            {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE + "ledger"},
        )
        self.assertTrue(role.allows("s3:PutObject", "arn:aws:s3:::b/receipts/o.json"))
        self.assertFalse(role.allows("s3:PutObject", "arn:aws:s3:::b/other/o.json"))
        self.assertTrue(role.allows("dynamodb:DeleteItem", TABLE + "tasks"))
        self.assertFalse(role.allows("dynamodb:DeleteItem", TABLE + "ledger"), "an explicit Deny wins")


class Answer(unittest.TestCase):
    def test_a_denied_call_gets_the_services_access_denied_naming_principal_action_and_resource(self):
        iam.MODE = "enforce"
        iam.register(json.dumps({"identities": [{"accessKeyId": "AKFN", "name": "fn", "roleArn": "arn:aws:iam::123456789012:role/R",
                                                 "policies": [{"Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE + "a"}]}]}]}).encode())
        body = json.dumps({"TableName": "b"}).encode()
        environ = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKFN/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
                   "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        answered = {}
        out = iam.check(environ, lambda status, headers: answered.update(status=status), lambda e, s: self.fail("must not reach moto"))
        error = json.loads(b"".join(out))
        self.assertEqual(answered["status"], "400 Bad Request")
        self.assertTrue(error["__type"].endswith("AccessDeniedException"))
        self.assertIn("User: arn:aws:sts::123456789012:assumed-role/R/fn is not authorized to perform: dynamodb:GetItem on resource: " + TABLE + "b", error["message"])
        self.assertEqual(iam.denials()[-1]["function"], "fn")


if __name__ == "__main__":
    unittest.main()
