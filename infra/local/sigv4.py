"""SigV4 signatures of header-signed requests, checked as AWS checks them, for the local X-Ray OTLP
endpoint (`POST /v1/traces`, replayed by infra/taskflow/src/otlp.rs to the emulator's route of
the same path; emulator.py).

iam.py reads the caller's access key from the `Authorization` header and checks its role; it does
not check the signature (moto does not either). The OTLP endpoint stores what the emulator
allows, so without this module an unsigned request, one signed with an unknown key or a wrong
secret, or one whose body is not the body signed, would all be stored; X-Ray's OTLP endpoint
refuses them (403). The signature is recomputed with botocore's SigV4 (`botocore.auth.SigV4Auth`)
from the identity's secret (iam.py keeps it: `iam.secret_for`), over the request as received:
method, path, query, every header named in `SignedHeaders` (the original `host`, which the
OTLP endpoint passes as `x-forwarded-host`), and the SHA-256 of the body received.

| rule (AWS general reference, "AWS Signature Version 4 for API requests" / "Elements of an AWS
  API request signature"; X-Ray and the JSON services' common errors) | answer |
|---|---|
| the request is signed (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`) | 403 MissingAuthenticationTokenException |
| the access key is known                                                                  | 403 UnrecognizedClientException |
| `X-Amz-Date` is within 5 minutes of the server's time                                   | 403 InvalidSignatureException "Signature expired" |
| `host` is signed; the signature is the SigV4 signature of the request as received, its payload hash that of the body received (a signed `x-amz-content-sha256` must be that hash) | 403 InvalidSignatureException |
"""

import calendar
import hashlib
import hmac
import re
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_SKEW_SECONDS = 5 * 60

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})\s*$"
)


class Refusal(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _header(environ, name):
    if name == "host":
        return environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST")
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def verify(environ, body, secret_for, now=None):
    """Checks the SigV4 `Authorization` header of the WSGI request `environ` with body `body`
    (bytes); `secret_for(access_key_id)` gives a known key's secret or None. Raises `Refusal`
    (X-Ray's error code and message) when AWS would refuse the request; returns the access key id."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if not authorization:
        raise Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization)
    if not match:
        raise Refusal("IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' (AWS4-HMAC-SHA256).")
    key_id, day, region, service, signed_names, signature = match.groups()
    secret = secret_for(key_id)
    if secret is None:
        raise Refusal("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = environ.get("HTTP_X_AMZ_DATE", "")
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise Refusal("IncompleteSignatureException", "X-Amz-Date must be a date like 20261129T120000Z")
    now = time.time() if now is None else now
    if abs(now - signed_at) > MAX_SKEW_SECONDS or not amz_date.startswith(day):
        raise Refusal("InvalidSignatureException", f"Signature expired: {amz_date} is not within 5 minutes of the server's time, or not of the credential's date {day}.")
    names = signed_names.split(";")
    if "host" not in names:
        raise Refusal("InvalidSignatureException", "'Host' must be a signed header.")
    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    if claimed is not None and claimed != payload_hash:
        # botocore's canonical request takes this header as the payload hash; AWS computes it.
        raise Refusal("InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    headers = {}
    for name in names:
        value = _header(environ, name)
        if value is None:
            raise Refusal("InvalidSignatureException", f"The signed header {name!r} is missing from the request.")
        headers[name] = value
    query = environ.get("QUERY_STRING", "")
    url = f"http://{headers['host']}{environ.get('PATH_INFO', '/')}" + (f"?{query}" if query else "")
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "POST"), url=url, data=body, headers=headers)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key_id, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signature):
        raise Refusal("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
    return key_id


def scope(environ):
    """The credential scope of the request's `Authorization` header, `(access_key_id, day, region,
    service)`, or None when it has none (call after `verify`)."""
    match = _AUTHORIZATION.match(environ.get("HTTP_AUTHORIZATION", ""))
    return match.groups()[:4] if match else None


def signing_key(secret, day, region, service):
    """SigV4's derived signing key for one credential scope (AWS general reference, "Create a
    signature for an AWS API request", step 4: HMAC-SHA256 of "AWS4" + secret over the date,
    then the region, the service and "aws4_request"). It signs only requests of that day, region
    and service; what AWS services themselves get from their authentication service instead of
    the secret."""
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
