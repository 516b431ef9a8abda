"""The Composite resource: ``POST .../composite``, several REST calls in one API request.

``{"allOrNone": bool, "compositeRequest": [{"method", "url", "referenceId",
"body"?}]}`` answers 200 ``{"compositeResponse": [{"body", "httpHeaders",
"httpStatusCode", "referenceId"}]}``, one result per subrequest in order,
and counts as one call against the daily API limit (the app counts the outer
request only). As in a real org:

* at most 25 subrequests; a malformed subrequest (method, url outside
  ``/services/data/vXX.X/``, a referenceId that is missing, repeated or not
  made of letters, digits and ``_``) fails the whole request with 400 before
  anything runs;
* ``@{ref.field}`` in a url or body is the field of an earlier subrequest's
  answer; a reference to one that failed (or did not run, or lacks the
  field) fails with 400 ``PROCESSING_HALTED`` and the subrequest is not run;
* ``allOrNone: true``: at the first failed subrequest everything done so far
  is rolled back and every other subrequest answers 400 ``PROCESSING_HALTED``;
  false: the others run and keep their effect.

A subrequest can fail on its own while the composite answers 200 (a row lock,
a 500 inside): ``state.fail_next(status, body, path_contains=...)`` naming a
subrequest's url (``"sobjects/ContentDocumentLink"``) answers that subrequest,
which does not run. Only faults with a ``path_contains`` reach subrequests
(the path they see is ``subrequest:`` + the url's path, so a default fault,
meant for whole REST requests, never does); a delay-only fault is taken and
ignored here.
"""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from simulators.salesforce.errors import api_error

if TYPE_CHECKING:
    from simulators.salesforce.state import SalesforceState

MAX_SUBREQUESTS = 25

Dispatch = Callable[["SalesforceState", str, str, str, Mapping[str, str], bytes], tuple[int, Any]]

_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
_URL = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/[^?]*)(?:\?(?P<query>.*))?$")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_REFERENCE = re.compile(r"@\{(?P<ref>[A-Za-z0-9_]+)(?P<path>(?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_SUBREQUEST = "subrequest:"  # what a subrequest's path starts with for fault matching
_ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."


class _Unresolved(Exception):
    """A reference names a subrequest that failed, did not run, or has no such field."""


def composite(state: SalesforceState, raw: bytes, versions: tuple[str, ...], dispatch: Dispatch) -> tuple[int, Any]:
    """Run a composite request; ``dispatch`` answers one subrequest (the app's own routing)."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        return 400, api_error("JSON_PARSER_ERROR", f"Unexpected character: {exc.msg} at [line:{exc.lineno}, "
                                                   f"column:{exc.colno}]")
    refused = _refusal(body, versions)
    if refused is not None:
        return 400, refused
    all_or_none = bool(body.get("allOrNone", False))
    subrequests = body["compositeRequest"]
    before = _snapshot(state) if all_or_none else None
    answers: dict[str, tuple[int, Any]] = {}
    results: list[dict[str, Any]] = []
    for index, sub in enumerate(subrequests):
        ref = sub["referenceId"]
        try:
            url = _resolve(sub["url"], answers, in_url=True)
            sub_body = _resolve(sub.get("body"), answers, in_url=False)
        except _Unresolved as exc:
            status, answer = 400, api_error("PROCESSING_HALTED", str(exc))
        else:
            status, answer = _injected(state, url) or _run(state, sub["method"], url, sub_body, dispatch)
        answers[ref] = (status, answer)
        results.append(_result(ref, status, answer, url=sub["url"]))
        if all_or_none and status >= 400:
            _restore(state, before)
            halted = api_error("PROCESSING_HALTED", _ROLLED_BACK)
            results = [r if i == index else _result(r["referenceId"], 400, halted) for i, r in enumerate(results)]
            results += [_result(s["referenceId"], 400, halted) for s in subrequests[index + 1:]]
            break
    return 200, {"compositeResponse": results}


def _refusal(body: Any, versions: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """Why the whole request is refused before any subrequest runs, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        return api_error("JSON_PARSER_ERROR", "Cannot deserialize instance of CompositeRequest: compositeRequest "
                                              "must be an array of subrequests")
    if not isinstance(body.get("allOrNone", False), bool):
        return api_error("JSON_PARSER_ERROR", "Cannot deserialize instance of boolean for allOrNone")
    subrequests = body["compositeRequest"]
    if not subrequests:
        return api_error("INVALID_INPUT", "compositeRequest must contain at least one subrequest")
    if len(subrequests) > MAX_SUBREQUESTS:
        return api_error("LIMIT_EXCEEDED", f"Composite request cannot have more than {MAX_SUBREQUESTS} "
                                           f"subrequests (got {len(subrequests)})")
    seen: set[str] = set()
    for sub in subrequests:
        if not isinstance(sub, dict):
            return api_error("JSON_PARSER_ERROR", "Cannot deserialize instance of CompositeSubrequest")
        ref, method, url = sub.get("referenceId"), sub.get("method"), sub.get("url")
        if not isinstance(ref, str) or not _REFERENCE_ID.match(ref):
            return api_error("INVALID_INPUT", f"Invalid referenceId: {ref!r}. A referenceId may contain only "
                                              "letters, numbers and underscores")
        if ref in seen:
            return api_error("INVALID_INPUT", f"Duplicate referenceId provided in the request: {ref}")
        seen.add(ref)
        if method not in _METHODS:
            return api_error("INVALID_INPUT", f"Invalid HTTP method {method!r} for subrequest {ref}")
        match = _URL.match(url) if isinstance(url, str) else None
        if match is None or match["version"] not in versions:
            return api_error("INVALID_INPUT", f"Invalid url {url!r} for subrequest {ref}: it must begin with "
                                              "/services/data/vXX.X/")
        if match["rest"].rstrip("/") == "/composite":
            return api_error("INVALID_INPUT", "A composite subrequest cannot be a composite request")
    return None


def _resolve(value: Any, answers: Mapping[str, tuple[int, Any]], *, in_url: bool) -> Any:
    """``value`` with every ``@{ref.path}`` replaced by what the earlier answer holds there."""
    if isinstance(value, dict):
        return {k: _resolve(v, answers, in_url=in_url) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, answers, in_url=in_url) for v in value]
    if not isinstance(value, str):
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole is not None and not in_url:  # a whole-string reference keeps the value's JSON type
        return _lookup(whole, answers)
    return _REFERENCE.sub(lambda m: str(_lookup(m, answers)), value)


def _lookup(match: re.Match[str], answers: Mapping[str, tuple[int, Any]]) -> Any:
    ref = match["ref"]
    status, answer = answers.get(ref, (0, None))
    value: Any = answer if 200 <= status < 300 else None
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", match["path"]):
        if isinstance(value, dict) and step[0] and step[0] in value:
            value = value[step[0]]
        elif isinstance(value, list) and step[1] and int(step[1]) < len(value):
            value = value[int(step[1])]
        else:
            value = None
            break
    if value is None:
        raise _Unresolved(f"Invalid reference specified. No value for {ref}{match['path']} found in {ref}. "
                          f"Provided referenceId ('{ref}') was not found, failed, or holds no such field.")
    return value


def _run(state: SalesforceState, method: str, url: str, body: Any, dispatch: Dispatch) -> tuple[int, Any]:
    match = _URL.match(url)
    if match is None:  # a reference made the url unusable
        return 404, api_error("NOT_FOUND", "The requested resource does not exist")
    query = dict(parse_qsl(urlsplit(url).query))
    raw = json.dumps(body).encode("utf-8") if body is not None else b""
    return dispatch(state, method, match["version"], match["rest"], query, raw)


def _injected(state: SalesforceState, url: str) -> tuple[int, Any] | None:
    """The answer of a fault a test set for this subrequest (see the module docstring), or None."""
    parts = urlsplit(url)
    fault = state._take_fault(f"{_SUBREQUEST}{parts.path}", unquote_plus(parts.query))
    if fault is None or fault.status is None:
        return None
    return fault.status, copy.deepcopy(fault.body)


def _result(ref: str, status: int, answer: Any, *, url: str = "") -> dict[str, Any]:
    headers: dict[str, str] = {}
    if status == 201 and isinstance(answer, dict) and answer.get("id"):
        headers["Location"] = f"{url.split('?')[0].rstrip('/')}/{answer['id']}"
    return {"body": answer, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref}


def _snapshot(state: SalesforceState) -> tuple[Any, ...]:
    return copy.deepcopy((state.records, state.deleted, state.note_bodies))


def _restore(state: SalesforceState, snapshot: tuple[Any, ...] | None) -> None:
    if snapshot is not None:
        state.records, state.deleted, state.note_bodies = copy.deepcopy(snapshot)
