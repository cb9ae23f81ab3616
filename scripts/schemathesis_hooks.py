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

The catalogue (server/src/catalogue.rs) adds byte limits of the same kind
(categories, label keys and texts, in bodies and in the filter parameters)
and three rules across fields: `expires_ms` after `timestamp_ms`, a body's
`id` the path's, and, in list reads, at most FILTER_LABELS_MAX label
conditions in all and `offset + n` at most N_MAX (`x-maxOffsetPlusN`).
Valid cases are moved inside them the same way.

And one answer no schema can foresee: whether the bytes uploaded to
`POST /admin/models` are a usable ONNX model (they load, meet the feature
contract, score the warm-up batch). The document declares 422 for a file
that is not, so a 422 there is not "a schema-valid request rejected". (A
per-operation `expected-statuses` in the config file would say the same, but
schemathesis 4.32.5 applies it to every operation.)
"""

import atexit
import itertools
import os
import re
import shutil
import tempfile
import time
import urllib.parse

import schemathesis

ID_BYTES = int(os.environ.get("RECWAL_ID_BYTES_MAX", "256"))
MAX_FUTURE_MS = int(os.environ.get("RECWAL_MAX_FUTURE_MS", "3600000"))
I64_MAX = 2**63 - 1
CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
ID_FIELDS = ("user", "item", "event_id")
CATEGORY_BYTES = 64
LABEL_KEY_BYTES = 64
LABEL_TEXT_BYTES = 256
FILTER_LABELS = 16
N_MAX = 1000
N_DEFAULT = 10


def _fit_bytes(value, limit, min_len=1):
    if not isinstance(value, str) or not min_len <= len(value) <= limit or CONTROL.search(value):
        return value
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return value
    return encoded[:limit].decode("utf-8", "ignore")


def _fit_id(value):
    return _fit_bytes(value, ID_BYTES)


def _fit_labels(labels):
    if not isinstance(labels, dict):
        return labels
    fitted = {}
    for key, value in labels.items():
        if isinstance(value, str):
            value = _fit_bytes(value, LABEL_TEXT_BYTES, 0)
        fitted[_fit_bytes(key, LABEL_KEY_BYTES)] = value
    return fitted


def _fit_catalogue_body(case, body):
    """PUT /v1/items/{item} and /v1/users/{user}."""
    parameters = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    path_id = parameters.get("item", parameters.get("user"))
    if isinstance(body.get("id"), str) and isinstance(path_id, str):
        # Path parameters are percent-encoded by now; the server decodes them.
        body["id"] = urllib.parse.unquote(path_id)
    if "labels" in body:
        body["labels"] = _fit_labels(body["labels"])
    if isinstance(body.get("categories"), list):
        body["categories"] = [_fit_bytes(category, CATEGORY_BYTES) for category in body["categories"]]
    start, end = body.get("timestamp_ms"), body.get("expires_ms")
    # JSON Schema's integers include integral floats (`-144.0`), which the
    # server reads as integers too.
    integral = lambda stamp: not isinstance(stamp, bool) and (
        isinstance(stamp, int) or (isinstance(stamp, float) and stamp.is_integer())
    )
    if integral(start) and integral(end) and end <= start:
        body["expires_ms"] = None


def _fit_label_condition(value):
    if not isinstance(value, str) or ":" not in value:
        return value
    key, rest = value.split(":", 1)
    return _fit_bytes(key, LABEL_KEY_BYTES) + ":" + _fit_bytes(rest, LABEL_TEXT_BYTES, 0)


def _strings(value):
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _fit_filter_query(query):
    """The filter and page parameters of the list reads."""
    if not isinstance(query, dict):
        return
    as_list = lambda value: value if isinstance(value, list) else [value]
    if "category" in query and _strings(query["category"]):
        query["category"] = [_fit_bytes(category, CATEGORY_BYTES) for category in as_list(query["category"])]
    # Only conditions valid on each parameter's own schema (strings, at most
    # maxItems of them) are moved inside the rule across the three (at most
    # FILTER_LABELS in all). A negative case (a wrong type, more than
    # maxItems in one parameter) stays as generated: truncating it, or
    # dropping a parameter of the wrong type, sent a valid request that
    # schemathesis still counted as invalid (ST201 "schema-violating request
    # accepted", seed 15 of the long mode).
    names = [name for name in ("label", "label_min", "label_max") if name in query]
    if all(_strings(query[name]) and len(as_list(query[name])) <= FILTER_LABELS for name in names):
        room = FILTER_LABELS
        for name in names:
            conditions = [_fit_label_condition(condition) for condition in as_list(query[name])][: max(room, 0)]
            room -= len(conditions)
            query[name] = conditions
    n, offset = query.get("n", N_DEFAULT), query.get("offset")
    whole = lambda value: isinstance(value, int) and not isinstance(value, bool)
    if whole(n) and whole(offset) and 1 <= n <= N_MAX and 0 <= offset and offset + n > N_MAX:
        query["offset"] = N_MAX - n


def _fit_session_body(body):
    """POST /v1/sessions/recommend: the filter and page, in the body."""
    if isinstance(body.get("exclude"), list):
        body["exclude"] = [_fit_id(item) for item in body["exclude"]]
    chosen = body.get("filter")
    if isinstance(chosen, dict):
        if isinstance(chosen.get("categories"), list):
            chosen["categories"] = [_fit_bytes(category, CATEGORY_BYTES) for category in chosen["categories"]]
        for condition in chosen.get("labels") if isinstance(chosen.get("labels"), list) else []:
            if isinstance(condition, dict):
                if "key" in condition:
                    condition["key"] = _fit_bytes(condition["key"], LABEL_KEY_BYTES)
                if isinstance(condition.get("value"), str):
                    condition["value"] = _fit_bytes(condition["value"], LABEL_TEXT_BYTES, 0)
    n = body.get("n")
    n = N_DEFAULT if n is None else n
    offset = body.get("offset")
    # JSON Schema integers: 637.0 is 637.
    whole = lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
    if whole(n) and whole(offset) and 1 <= n <= N_MAX and 0 <= offset and offset + n > N_MAX:
        body["offset"] = N_MAX - int(n)


# POST /admin/backup writes a real backup on the server's machine: every
# valid `out` (an absolute path) is moved into a scratch directory of this
# run, removed at exit, so the run never writes elsewhere.
_BACKUPS = tempfile.mkdtemp(prefix="recwal-schemathesis-backups-")
_BACKUP_COUNT = itertools.count()
atexit.register(shutil.rmtree, _BACKUPS, True)


def _fit_backup_body(body):
    out = body.get("out")
    if isinstance(out, str) and out.startswith("/"):
        body["out"] = os.path.join(_BACKUPS, f"backup-{next(_BACKUP_COUNT)}")


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
    _fit_filter_query(case.query)
    body = case.body
    if isinstance(body, dict) and case.method.upper() == "PUT":
        _fit_catalogue_body(case, body)
    elif isinstance(body, dict):
        if case.path == "/v1/sessions/recommend":
            _fit_session_body(body)
        if case.path == "/admin/backup":
            _fit_backup_body(body)
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
