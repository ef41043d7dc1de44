#!/usr/bin/env python3
"""OFREP against a live octostore with the real OpenFeature Python SDK and its OFREP provider.

    OCTOSTORE_URL=http://127.0.0.1:PORT OCTOSTORE_TOKEN=... python ofrep_sdk.py

Run by scripts/ofrep_sdk.sh, which starts the server and creates the flags checked here
(pro-only, color, max-items, ratio, theme, rollout, retired, checkout, checkout-v2 and the
segment acme). Prints a line per check and
exits 1 at the first failure.
"""
import os
import sys

import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode

URL = os.environ["OCTOSTORE_URL"]
TOKEN = os.environ["OCTOSTORE_TOKEN"]
COLORS = {"blue": "#0000ff", "green": "#00ff00"}
passed = 0


def bearer(token):
    return lambda: {"Authorization": f"Bearer {token}"}


def fail(message):
    print(f"FAIL {message}")
    print(f"{passed} passed, 1 failed")
    sys.exit(1)


def ok(message, quiet=False):
    global passed
    passed += 1
    if not quiet:
        print(f"ok   {message}")


def check(name, details, value, reason=None, variant=None, error=None, quiet=False):
    """details is a FlagEvaluationDetails; reason/variant None means "not checked"."""
    got = (details.value, details.reason, details.variant, details.error_code)
    want = (value, reason or details.reason, variant or details.variant, error)
    shown = (f"value={details.value!r} variant={details.variant!r} reason={details.reason}"
             f" error={details.error_code} {details.error_message or ''}").rstrip()
    if got != want or type(details.value) is not type(value):
        wanted = f"value={value!r} ({type(value).__name__}) error={error}"
        wanted += f" reason={reason}" * bool(reason) + f" variant={variant!r}" * bool(variant)
        fail(f"{name}: {shown}\n     wanted {wanted}")
    ok(f"{name}: {shown}", quiet)


def user(key=None, **attributes):
    return EvaluationContext(targeting_key=key, attributes=attributes)


api.set_provider_and_wait(OFREPProvider(URL, headers_factory=bearer(TOKEN), timeout=10))
client = api.get_client()

# A boolean flag on by a rule (plan IN ["pro"]): its value comes from the server, never the default.
check("boolean, rule matches (plan=pro)",
      client.get_boolean_details("pro-only", False, user("user-1", plan="pro")),
      True, reason="TARGETING_MATCH")
check("boolean, no rule matches (plan=free)",
      client.get_boolean_details("pro-only", True, user("user-1", plan="free")),
      False, reason="DEFAULT")

# A string flag with two weighted variants: each subject gets one variant and its payload.
seen = set()
for i in range(40):
    d = client.get_string_details("color", "none", user(f"user-{i}"))
    check(f"string variant (user-{i})", d, COLORS.get(d.variant, "a color"), reason="SPLIT",
          quiet=True)
    seen.add(d.variant)
if seen != set(COLORS):
    fail(f"string variants: 40 subjects all got {seen}")
ok(f"string variants: 40 subjects, each the payload of its variant, {sorted(seen)} both seen")
first = client.get_string_details("color", "none", user("user-7"))
check("string variant, same subject again", client.get_string_details("color", "none", user("user-7")),
      first.value, reason="SPLIT", variant=first.variant)

# Numbers: an integer payload must arrive as a JSON integer, a fraction as a JSON float.
check("integer", client.get_integer_details("max-items", 0, user("user-1")), 25, variant="max")
check("float", client.get_float_details("ratio", 0.0, user("user-1")), 0.25, variant="quarter")
# Objects: a json payload comes back as a dict.
check("object", client.get_object_details("theme", {}, user("user-1")),
      {"mode": "dark", "sizes": [1, 2]}, variant="dark")

# A disabled flag with variants: no value, so the code's default, with no error.
check("disabled variant flag -> default", client.get_string_details("retired", "fallback", user("u")),
      "fallback", reason="DISABLED")

# Errors: the code's default, with the OpenFeature error code.
check("missing flag", client.get_boolean_details("no-such-flag", True, user("user-1")),
      True, reason="ERROR", error=ErrorCode.FLAG_NOT_FOUND)
check("percentage rollout without a targeting key",
      client.get_boolean_details("rollout", True, user(plan="pro")),
      True, reason="ERROR", error=ErrorCode.TARGETING_KEY_MISSING)
d = client.get_boolean_details("rollout", True, user("user-1"))
check("percentage rollout with a targeting key", d, d.value, error=None)
check("string flag asked as boolean", client.get_boolean_details("color", False, user("user-1")),
      False, reason="ERROR", error=ErrorCode.TYPE_MISMATCH)
check("integer flag asked as float", client.get_float_details("max-items", 1.5, user("user-1")),
      1.5, reason="ERROR", error=ErrorCode.TYPE_MISMATCH)

# A rule naming a segment (email ends with @acme.com, ignoring case), under a prerequisite.
check("segment matches", client.get_boolean_details("checkout-v2", False, user("u2", email="Ann@ACME.com")),
      True, reason="TARGETING_MATCH")
check("segment does not match", client.get_boolean_details("checkout-v2", True, user("u2", email="ann@example.com")),
      False, reason="DEFAULT")
# The kill switch: checkout off turns checkout-v2 off for everyone.
r = requests.patch(URL.rstrip("/") + "/flags/checkout", json={"enabled": False},
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
if r.status_code != 200:
    fail(f"PATCH /flags/checkout: {r.status_code} {r.text[:300]}")
d = client.get_boolean_details("checkout-v2", True, user("u2", email="ann@acme.com"))
check("prerequisite off (kill switch)", d, False, reason="DISABLED")
if d.flag_metadata.get("reason") != "PREREQUISITE_FAILED":
    fail(f"prerequisite off: metadata {d.flag_metadata!r}, wanted reason PREREQUISITE_FAILED")

# A bad token: the provider maps 401 to GENERAL with the message "unauthorized".
api.set_provider_and_wait(OFREPProvider(URL, headers_factory=bearer("not-a-token")), "bad-token")
d = api.get_client("bad-token").get_boolean_details("pro-only", False, user("user-1", plan="pro"))
check("bad token", d, False, reason="ERROR", error=ErrorCode.GENERAL)
if d.error_message != "unauthorized":
    fail(f"bad token: message {d.error_message!r}, wanted 'unauthorized'")

# The bulk endpoint, which the Python provider never calls: plain HTTP, with its ETag.
bulk_url = URL.rstrip("/") + "/ofrep/v1/evaluate/flags"
headers = {"Authorization": f"Bearer {TOKEN}"}
ctx = {"context": {"targetingKey": "user-1", "plan": "pro"}}
r = requests.post(bulk_url, json=ctx, headers=headers, timeout=10)
flags = {f["key"]: f for f in r.json().get("flags", [])} if r.status_code == 200 else {}
if flags.get("pro-only", {}).get("value") is not True or flags.get("max-items", {}).get("value") != 25:
    fail(f"bulk: {r.status_code} {r.text[:500]}")
ok(f"bulk: {len(flags)} flags, pro-only=true, max-items=25")
etag = r.headers.get("ETag")
if etag:
    r = requests.post(bulk_url, json=ctx, headers={**headers, "If-None-Match": etag}, timeout=10)
    if r.status_code != 304:
        fail(f"bulk with If-None-Match {etag}: {r.status_code}, wanted 304")
    ok("bulk again with If-None-Match: 304")
else:
    fail("bulk answered without an ETag")

print(f"{passed} passed, 0 failed")
