"""schemathesis hooks for scripts/schemathesis.sh.

Two rules of the server cannot be written in JSON Schema, so /openapi.json
states them as extension keywords beside the schema and the generator is
taught them here. Each edit keeps a case on its side of the schema (valid
stays valid, invalid stays invalid; schemathesis re-validates after
`before_call`), so negative testing is untouched:

- `x-maxBytes`: ids are limited in UTF-8 bytes, JSON Schema counts
  characters. A valid id (1-256 characters, no control characters) longer
  than 256 bytes is cut to 256 bytes at a character boundary.
- `x-maxFutureMs`: `timestamp_ms` may be at most that far ahead of the
  server's clock. A valid timestamp beyond it is replaced by now.

And one answer no schema can foresee: whether the bytes uploaded to
`POST /admin/models` are a usable ONNX model (they load, meet the feature
contract, score the warm-up batch). The document declares 422 for a file
that is not, so a 422 there is not "a schema-valid request rejected". (A
per-operation `expected-statuses` in the config file would say the same, but
schemathesis 4.32.5 applies it to every operation.)
"""

import os
import re
import time

import schemathesis

ID_BYTES = int(os.environ.get("RECWAL_ID_BYTES_MAX", "256"))
MAX_FUTURE_MS = int(os.environ.get("RECWAL_MAX_FUTURE_MS", "3600000"))
I64_MAX = 2**63 - 1
CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
ID_FIELDS = ("user", "item", "event_id")


def _fit_id(value):
    if not isinstance(value, str) or not 1 <= len(value) <= ID_BYTES or CONTROL.search(value):
        return value
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= ID_BYTES:
        return value
    return encoded[:ID_BYTES].decode("utf-8", "ignore")


def _fit_event(event):
    if not isinstance(event, dict):
        return
    for field in ID_FIELDS:
        if field in event:
            event[field] = _fit_id(event[field])
    stamp = event.get("timestamp_ms")
    now = int(time.time() * 1000)
    integral = isinstance(stamp, int) or (isinstance(stamp, float) and stamp.is_integer())
    if integral and not isinstance(stamp, bool) and now + MAX_FUTURE_MS // 2 < stamp <= I64_MAX:
        event["timestamp_ms"] = now


@schemathesis.hook
def before_call(context, case, kwargs):
    if isinstance(case.path_parameters, dict):
        for name in ("user", "item"):
            if name in case.path_parameters:
                case.path_parameters[name] = _fit_id(case.path_parameters[name])
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("events"), list):
            for event in body["events"]:
                _fit_event(event)
        else:
            _fit_event(body)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    model_refused = (
        case.method.upper() == "POST"
        and case.path == "/admin/models"
        and response is not None
        and response.status_code == 422
        and type(failure).__name__ == "RejectedPositiveData"
    )
    return not model_refused
