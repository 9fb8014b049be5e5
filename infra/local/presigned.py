"""S3 presigned URLs (SigV4 query authentication), checked as S3 checks them: moto 5.2.5 checks
neither their expiry nor their signature (moto/s3/responses.py verifies the headers of a
presigned request only for a key that does not exist yet, and only when its own IAM mode is on,
which the local stack does not use: see iam.py). Without this, an expired URL, an upload of
another size or content type than the one signed, or a tampered URL would all be accepted
locally and refused on AWS.

`emulator.py` calls `install(secret_for)` once; `secret_for(access_key_id)` gives the secret of a
registered identity (or None).

| rule (Amazon S3 API reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)",
  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html) | S3's answer |
|---|---|
| `X-Amz-Expires` is 1–604800 seconds (7 days)                                      | 400 AuthorizationQueryParametersError |
| the request arrives before `X-Amz-Date` + `X-Amz-Expires`                          | 403 AccessDenied "Request has expired" |
| the access key is known                                                           | 403 InvalidAccessKeyId |
| the signature is the SigV4 signature of the request as received: method, URI, query (without `X-Amz-Signature`), and the values of every header in `X-Amz-SignedHeaders` (so a signed `content-length` or `content-type` must be what is sent), payload `UNSIGNED-PAYLOAD` | 403 SignatureDoesNotMatch |
| `host` is among the signed headers                                                 | 400 AuthorizationQueryParametersError |
"""

import calendar
import functools
import hashlib
import hmac
import time
import urllib.parse
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

MAX_EXPIRES_SECONDS = 604800


def _error(start_response, status, code, message, extra=""):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}<RequestId>presigned-{int(time.time() * 1000)}</RequestId></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _uri_encode(text, safe):
    return urllib.parse.quote(text, safe=safe)


def _header_value(environ, name):
    if name == "content-type":
        value = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        value = environ.get("CONTENT_LENGTH")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    if value is None:
        return None
    return " ".join(value.strip().split())


def expected_signature(environ, params, secret):
    """The SigV4 signature of the request `environ` (a presigned S3 request, query `params`)."""
    raw_path = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")).split("?", 1)[0]
    # S3 canonical URI: each path byte URI-encoded once, `/` kept (no double encoding for S3).
    canonical_uri = _uri_encode(urllib.parse.unquote(raw_path), "/-_.~")
    query = sorted(
        (_uri_encode(k, "-_.~"), _uri_encode(v, "-_.~"))
        for k, v in urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if k != "X-Amz-Signature"
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in query)
    signed = params["X-Amz-SignedHeaders"].split(";")
    headers = ""
    for name in signed:
        value = _header_value(environ, name)
        if value is None:
            return None
        headers += f"{name}:{value}\n"
    payload = params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join([environ.get("REQUEST_METHOD", "GET"), canonical_uri, canonical_query, headers, ";".join(signed), payload])
    key_id, date, region, service, _ = params["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()


def check(environ, start_response, secret_for):
    """None if `environ` is not a presigned S3 request or passes; else S3's refusal (with the
    request's body read first, so that the client, still sending it, gets the answer)."""
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Signature=" not in query:
        return None

    def refuse(*args, **kwargs):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        while length > 0:
            chunk = environ["wsgi.input"].read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)
        return _error(*args, **kwargs)

    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    credential = params.get("X-Amz-Credential", "").split("/")
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or len(credential) != 5 or credential[3] != "s3":
        return None  # not SigV4 query auth for S3: moto's as it was
    for name in ("X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"):
        if name not in params:
            return refuse(start_response, "400 Bad Request", "AuthorizationQueryParametersError", f"Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    try:
        expires = int(params["X-Amz-Expires"])
        signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return refuse(start_response, "400 Bad Request", "AuthorizationQueryParametersError", "X-Amz-Expires must be a number of seconds and X-Amz-Date a date like 20261129T120000Z")
    if not 1 <= expires <= MAX_EXPIRES_SECONDS:
        return refuse(start_response, "400 Bad Request", "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    if "host" not in params["X-Amz-SignedHeaders"].split(";"):
        return refuse(start_response, "400 Bad Request", "AuthorizationQueryParametersError", "host must be a signed header")
    now = time.time()
    if now > signed_at + expires:
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        return refuse(start_response, "403 Forbidden", "AccessDenied", "Request has expired", f"<X-Amz-Expires>{expires}</X-Amz-Expires><Expires>{stamp(signed_at + expires)}</Expires><ServerTime>{stamp(now)}</ServerTime>")
    secret = secret_for(credential[0])
    if secret is None:
        return refuse(start_response, "403 Forbidden", "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    expected = expected_signature(environ, params, secret)
    if expected is None or not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return refuse(start_response, "403 Forbidden", "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
    return None


def install(secret_for):
    dispatch = DomainDispatcherApplication.__call__

    @functools.wraps(dispatch)
    def checked(app, environ, start_response):
        refused = check(environ, start_response, secret_for)
        return refused if refused is not None else dispatch(app, environ, start_response)

    DomainDispatcherApplication.__call__ = checked
