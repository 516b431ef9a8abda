"""Salesforce connector on simple-salesforce (REST: describe, SOQL, sObject Collections).

Summary notes (``notes``): a ``ContentNote`` and its ``ContentDocumentLink`` records
in one Composite API request per note (``connectors.notes``).

Requests per call are kept minimal: one describe per object per connector
instance, one SOQL query per object and chunk of up to 200 ids, one
``PATCH composite/sobjects`` per 200 records. Partial success is the rule:

* ids are checked locally (length, charset, checksum, key prefix) before a
  query, so one malformed id cannot fail a whole ``IN`` list; if the query is
  still rejected for an id, the chunk is split until the bad id is isolated;
* Salesforce drops a whole record for one bad field: the record is re-sent
  once without the fields its errors named, so good sibling fields land;
* a whole-request ``JSON_PARSER_ERROR`` splits the batch in halves, and then a
  single record's fields, until the bad field is isolated;
* when a later request of a call fails transiently (429, 5xx, timeout), the
  ``TransientError`` carries in ``partial`` the results of every record already
  settled, so the caller retries only the others.

Authentication: ``instance_url`` + ``access_token`` (no renewal: an expired
token raises ``AuthError``), password (SOAP login) or JWT bearer; the last two
renew an expired session once per call. simple-salesforce is always used in
"direct" session mode so that it never retries or re-logs-in on its own.

Limits: every request simple-salesforce sends (logins included) goes through
the connector's requests session wrapper, ``session._TimedSession.request``,
which runs it inside ``self.gate.request()`` (shared rate/concurrency limits,
see ``worker.limits.rate``) and reports each answer's ``Sforce-Limit-Info:
api-usage=USED/LIMIT`` to ``gate.observe_daily_usage``, so the gate can stop
before the org's daily allocation is spent. ``REQUEST_LIMIT_EXCEEDED`` (403
or 429) is a ``TransientError`` with the answer's ``Retry-After`` (Salesforce
usually sends none); that answer's ``Sforce-Limit-Info`` then makes the gate
refuse the retries, with a ``retry_after`` of its own, until usage drops.

The modules, one concern each:

``connector``
    ``SalesforceConnector``: options, gate, describe, values, the check.
``options``
    The connection's options → how to authenticate (``SalesforceConfigError``).
``session``
    The gated requests session, logins, one API call with its errors mapped.
``ids``
    Record ids: ``salesforce_id18``.
``read``
    SOQL by id, in chunks.
``write``
    sObject Collections updates, splitting, per-record errors.
``schema``
    Describe → ``FieldSchema``.
"""

from connectors.salesforce.connector import DEFAULT_TIMEOUT_S, SalesforceConnector
from connectors.salesforce.ids import salesforce_id18
from connectors.salesforce.options import DEFAULT_API_VERSION, SalesforceConfigError
from connectors.salesforce.read import MAX_QUERY_CHARS, READ_CHUNK
from connectors.salesforce.write import BATCH_SIZE

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_API_VERSION",
    "DEFAULT_TIMEOUT_S",
    "MAX_QUERY_CHARS",
    "READ_CHUNK",
    "SalesforceConfigError",
    "SalesforceConnector",
    "salesforce_id18",
]
