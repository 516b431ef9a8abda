"""HubSpot CRM v3 connector, on the official ``hubspot-api-client``.

Summary notes (``notes``): ``notes`` objects in ``batch/create`` with their
default associations, ``batch/update`` in place, records linked later
through the associations v4 API (``connectors.notes``).

Options (a connection's keys from the config file):

``access_token``
    A private app token (or an OAuth access token). Required. It cannot be
    renewed here: a 401 is an ``AuthError``. A 403 (``MISSING_SCOPES`` for one
    object type, say) is a ``PermanentError`` of that call: the token works, it
    just may not do that.
``api_url``
    Default ``https://api.hubapi.com``; the simulators use a loopback URL.
``timeout_s``
    Read timeout of one call, seconds (default 30; connect timeout 10).
``ca_bundle``
    A PEM file of CAs to trust (default: ``REQUESTS_CA_BUNDLE`` when set, else
    the system's).

Wire facts this package relies on (see ``simulators.hubspot``):

* Property values travel as strings; an empty string clears a property.
* Pipeline and stage properties take their options from the pipelines API,
  and every listed option (hidden ones too) is a valid value: how properties
  map onto ``FieldSchema`` is ``connectors.hubspot.schema``.
* ``batch/update`` rejects the whole batch (400 ``VALIDATION_ERROR``) for one
  bad property value without saying which input it was, so a rejected batch is
  bisected; for a single input, the rejected properties (named in the error)
  are dropped with their outcome and the rest re-sent.
* Missing records are reported per object (207 ``OBJECT_NOT_FOUND``).

Retries are not done here (the client's urllib3 retries are off too): the
pipeline retries ``TransientError``. A 429 (``RATE_LIMIT``, policy
``TEN_SECONDLY_ROLLING``) is one, with ``retry_after`` from ``Retry-After``,
else the window of ``X-HubSpot-RateLimit-Interval-Milliseconds``, else 1 s
(parsed by ``connectors.support``, like every ``Retry-After``).

Limits: every request goes through ``self.gate.request()`` (shared rate and
concurrency limits, ``worker.limits.rate``). The choke point is the urllib3
pool manager inside each API object's ``ApiClient.rest_client``, which every
generated API method ends in: ``ApiMixin._api`` wraps it in
``_GatedPoolManager`` when it builds the API object (``connectors.hubspot.api``).

The modules, one concern each:

``connector``
    ``HubSpotConnector``: options, gate, properties and pipelines, values, the check.
``api``
    The client, its gated connection pools, one call, HTTP failures → errors.
``read``
    ``batch/read``.
``write``
    ``batch/update``, rejected inputs and properties set apart.
``schema``
    Properties (and pipelines) → ``FieldSchema``.
"""

from connectors.hubspot.api import DEFAULT_RETRY_AFTER_S, MAX_BATCH
from connectors.hubspot.connector import (
    CONNECT_TIMEOUT_S,
    DEFAULT_API_URL,
    DEFAULT_TIMEOUT_S,
    HubSpotConfigError,
    HubSpotConnector,
)
from connectors.hubspot.write import ERROR_OUTCOMES

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_API_URL",
    "DEFAULT_RETRY_AFTER_S",
    "DEFAULT_TIMEOUT_S",
    "ERROR_OUTCOMES",
    "MAX_BATCH",
    "HubSpotConfigError",
    "HubSpotConnector",
]
