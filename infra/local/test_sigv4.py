"""Unit tests of the SigV4 check of the local X-Ray OTLP endpoint (sigv4.py) and of the refusal
of anonymous requests (iam.py). Run: `.venv/bin/python -m unittest discover -s infra/local -p 'test_*.py'`."""

import calendar
import io
import json
import unittest

import iam
import sigv4

# The request services/shared/src/otlp.rs's test signs (aws-sigv4), and its known signature.
AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                 "Signature=76bd78f85295ddd69fe5799e4e77a58fd9bf1351d628519f9a678da22956af4f")
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SIGNED_AT = calendar.timegm((2026, 11, 29, 12, 0, 0))
BODY = b"\x0a\x00"


def environ(authorization=AUTHORIZATION, host="xray.us-east-1.amazonaws.com", **extra):
    e = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/traces", "QUERY_STRING": "", "CONTENT_TYPE": "application/x-protobuf",
         "HTTP_HOST": "127.0.0.1:4566", "HTTP_X_FORWARDED_HOST": host, "HTTP_X_AMZ_DATE": "20261129T120000Z"}
    if authorization is not None:
        e["HTTP_AUTHORIZATION"] = authorization
    e.update(extra)
    return e


def secret_for(key):
    return {"AKIDEXAMPLE": SECRET}.get(key)


class OtlpSignature(unittest.TestCase):
    def refused(self, env, body=BODY, secrets=secret_for, now=SIGNED_AT):
        with self.assertRaises(sigv4.Refusal) as caught:
            sigv4.verify(env, body, secrets, now=now)
        return caught.exception.code

    def test_the_request_as_signed_passes(self):
        self.assertEqual(sigv4.verify(environ(), BODY, secret_for, now=SIGNED_AT), "AKIDEXAMPLE")

    def test_the_scope_and_its_signing_key_reproduce_the_signature(self):
        # What the emulator hands the OTLP endpoint (emulator.py, `_otlp_authorise`): with the
        # derived key alone, the known signature of the request is recomputed.
        import hashlib
        import hmac

        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        self.assertEqual(sigv4.scope(environ()), ("AKIDEXAMPLE", "20261129", "us-east-1", "xray"))
        self.assertIsNone(sigv4.scope(environ(authorization=None)))
        key = sigv4.signing_key(SECRET, "20261129", "us-east-1", "xray")
        request = AWSRequest(method="POST", url="http://xray.us-east-1.amazonaws.com/v1/traces", data=BODY,
                             headers={"content-type": "application/x-protobuf", "host": "xray.us-east-1.amazonaws.com", "x-amz-date": "20261129T120000Z"})
        request.context["timestamp"] = "20261129T120000Z"
        signer = SigV4Auth(Credentials("AKIDEXAMPLE", SECRET), "xray", "us-east-1")
        string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
        self.assertEqual(hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), AUTHORIZATION.rsplit("=", 1)[1])
        self.assertNotEqual(sigv4.signing_key(SECRET, "20261130", "us-east-1", "xray"), key)

    def test_unsigned_unknown_key_wrong_secret_and_tampered_body_are_refused(self):
        self.assertEqual(self.refused(environ(authorization=None)), "MissingAuthenticationTokenException")
        self.assertEqual(self.refused(environ(), secrets=lambda k: None), "UnrecognizedClientException")
        self.assertEqual(self.refused(environ(), secrets=lambda k: "not-the-secret"), "InvalidSignatureException")
        self.assertEqual(self.refused(environ(), body=b"\x0a\x01"), "InvalidSignatureException")
        # Another body with its own hash claimed in x-amz-content-sha256 does not help.
        import hashlib
        self.assertEqual(self.refused(environ(HTTP_X_AMZ_CONTENT_SHA256=hashlib.sha256(b"\x0a\x01").hexdigest()), body=b"\x0a\x01"), "InvalidSignatureException")

    def test_another_host_an_old_date_and_a_malformed_header_are_refused(self):
        self.assertEqual(self.refused(environ(host="127.0.0.1:9")), "InvalidSignatureException")
        self.assertEqual(self.refused(environ(), now=SIGNED_AT + 301), "InvalidSignatureException")
        self.assertEqual(self.refused(environ(authorization="AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE")), "IncompleteSignatureException")


class Anonymous(unittest.TestCase):
    def call(self, env):
        answered = {}
        env.setdefault("wsgi.input", io.BytesIO(b""))
        out = iam.check(env, lambda status, headers: answered.update(status=status), lambda e, s: [b"moto"])
        return answered.get("status"), b"".join(out)

    def test_unsigned_requests_to_aws_apis_are_refused_in_enforce_mode(self):
        iam.MODE = "enforce"
        status, body = self.call({"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket/attachments/x", "CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"abc")})
        self.assertEqual(status, "403 Forbidden")
        self.assertIn(b"<Code>AccessDenied</Code>", body)
        status, body = self.call({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket", "QUERY_STRING": "list-type=2"})
        self.assertEqual(status, "403 Forbidden")
        status, body = self.call({"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Scan", "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")})
        self.assertEqual(status, "400 Bad Request")
        self.assertIn("MissingAuthenticationToken", json.loads(body)["__type"])
        self.assertFalse([d for d in iam.denials() if d.get("principal") == "anonymous"], "not a role's denial")

    def test_signed_presigned_and_public_requests_pass(self):
        iam.MODE = "enforce"
        signed = {"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket", "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=test/20261129/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"}
        for env in [
            signed,
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket/k", "QUERY_STRING": "X-Amz-Signature=abc&X-Amz-Credential=test/20261129/us-east-1/s3/aws4_request"},
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/moto-api/data.json"},
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/us-east-1_abc/.well-known/jwks.json"},
            {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_X_AMZ_TARGET": "AWSCognitoIdentityProviderService.InitiateAuth"},
            {"REQUEST_METHOD": "OPTIONS", "PATH_INFO": "/bucket/k"},
        ]:
            self.assertEqual(self.call(env), (None, b"moto"), env)

    def test_off_mode_checks_nothing(self):
        iam.MODE = "off"
        try:
            self.assertEqual(self.call({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket"}), (None, b"moto"))
        finally:
            iam.MODE = "enforce"


if __name__ == "__main__":
    unittest.main()
