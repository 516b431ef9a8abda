"""A Salesforce REST API simulator (Starlette app around ``SalesforceState``).

It speaks the parts of the wire protocol that the Salesforce connector and
simple-salesforce use, and is at least as strict as a real org:

* ``GET /services/data/`` (versions), ``GET /services/data/vXX.X/``,
  ``.../sobjects/``, ``.../sobjects/{name}/describe``, ``.../limits/``;
* ``GET .../query/?q=`` for ``SELECT f, ... FROM Obj [WHERE Id = '..' | Id IN (..)] [LIMIT n]``
  (with ``nextRecordsUrl`` paging past ``query_batch_size`` rows);
* ``PATCH .../composite/sobjects`` (sObject Collections update: at most 200
  records, ``JSON_PARSER_ERROR`` fails the whole request, other errors per
  record, ``allOrNone`` rollback);
* ``GET``/``PATCH .../sobjects/{name}/{id}``;
* notes: ``ContentNote`` (ids ``069``, base64 ``Content``) create, read,
  update, delete, ``ContentDocumentLink`` (``DUPLICATE_VALUE`` for a link
  that exists; queries need a filter on ``ContentDocumentId`` or
  ``LinkedEntityId``), and ``POST .../composite`` (up to 25 subrequests,
  ``@{ref.id}`` references, ``allOrNone``; one API call);
* SOAP ``POST /services/Soap/u/{version}`` login and
  ``POST /services/oauth2/token`` with the JWT bearer grant.

Every response carries ``Sforce-Limit-Info``. Ids are real 15/18-character
Salesforce ids with the object's key prefix and the case-restoring checksum.

simple-salesforce hard-codes ``https://{domain}.salesforce.com`` for logins:
``route_salesforce_logins(session, served_url)`` mounts a transport adapter
that sends every ``*.salesforce.com`` request to the simulator instead.

Typical use::

    state = SalesforceState()
    ids = seed_default(state)                     # schema + sample records
    token = state.issue_token()
    with ServedApp(create_app(state), tls=True) as served:
        session = client_session(served.url)      # trusts the local CA, routes logins
        connector = SalesforceConnector(
            {"instance_url": served.url, "access_token": token}, session=session)

Modules: ``ids`` (15/18-character ids), ``schema`` (objects, fields, describe),
``values`` (JSON parsing and per-record validation of field values),
``state`` (``SalesforceState``: records, tokens, logins, log, faults),
``seed`` (the default org), ``query`` (SOQL), ``writes`` (sObject Collections
and single-record PATCH), ``notes`` and ``notes_query`` (ContentNote and
ContentDocumentLink), ``composite`` (the Composite API), ``login`` (SOAP and
JWT), ``errors`` (Salesforce's error bodies), ``app`` (the ASGI app and
routing), ``client`` (the requests session side).
"""

from simulators.salesforce.app import API_VERSIONS, MAX_URI_LENGTH, create_app
from simulators.salesforce.client import (
    LocalRoute,
    client_session,
    route_salesforce_logins,
)
from simulators.salesforce.errors import INVALID_SESSION_BODY, NOT_FOUND_BODY
from simulators.salesforce.ids import id_suffix, make_id, to_id18
from simulators.salesforce.login import PARTNER_NS, SOAP_NS
from simulators.salesforce.schema import (
    INT_TYPES,
    NUMBER_TYPES,
    SOAP_TYPES,
    STRING_TYPES,
    PicklistValue,
    SFField,
    SFObject,
)
from simulators.salesforce.seed import (
    OPPORTUNITY_STAGES,
    SeededIds,
    seed_default,
    seed_default_schema,
)
from simulators.salesforce.state import (
    DEFAULT_API_LIMIT,
    ORG_ID,
    LoggedRequest,
    SalesforceState,
)
from simulators.salesforce.writes import MAX_COLLECTION_RECORDS

__all__ = [
    "API_VERSIONS",
    "DEFAULT_API_LIMIT",
    "INT_TYPES",
    "INVALID_SESSION_BODY",
    "LocalRoute",
    "LoggedRequest",
    "MAX_COLLECTION_RECORDS",
    "MAX_URI_LENGTH",
    "NOT_FOUND_BODY",
    "NUMBER_TYPES",
    "OPPORTUNITY_STAGES",
    "ORG_ID",
    "PARTNER_NS",
    "PicklistValue",
    "SFField",
    "SFObject",
    "SOAP_NS",
    "SOAP_TYPES",
    "STRING_TYPES",
    "SalesforceState",
    "SeededIds",
    "client_session",
    "create_app",
    "id_suffix",
    "make_id",
    "route_salesforce_logins",
    "seed_default",
    "seed_default_schema",
    "to_id18",
]
