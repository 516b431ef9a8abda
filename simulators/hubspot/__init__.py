"""A HubSpot CRM v3 simulator: properties, pipelines and objects (batch read/update).

It speaks the wire protocol that ``hubspot-api-client`` expects and is at least
as strict as real HubSpot where it matters to a write-back integration:

* ``Authorization: Bearer <token>``; unknown tokens get 401
  ``INVALID_AUTHENTICATION``, expired ones 401 ``EXPIRED_AUTHENTICATION``.
* ``GET /crm/v3/properties/{objectType}`` with the real property shape;
  ``dealstage``/``pipeline`` (and leads' ``hs_pipeline``/``hs_pipeline_stage``)
  have empty ``options`` and ``externalOptions: true``; their values live in
  ``GET /crm/v3/pipelines/{objectType}``.
* ``POST /crm/v3/objects/{objectType}/batch/read``: 200, or 207 with an
  ``OBJECT_NOT_FOUND`` error listing the missing ids; more than 100 inputs is
  400.
* ``POST /crm/v3/objects/{objectType}/batch/update``: more than 100 inputs or a
  duplicate id is 400; any invalid property value in any input rejects the whole
  batch with 400 ``VALIDATION_ERROR`` (``Property values were not valid: [...]``
  plus ``errors[]`` with ``code`` and ``context.propertyName``), and nothing is
  written; missing records (all values valid) give 207 with the others written.
* ``GET``/``PATCH /crm/v3/objects/{objectType}/{id}``.
* Notes (``simulators.hubspot.notes``): ``notes`` objects created one at a
  time or in ``batch/create`` with inline associations (a note without
  ``hs_timestamp``, an association type that does not fit the pair, or a
  record that does not exist refuses the request), and the associations v4
  API (default associations, batch associate, paged listing).
* Enumeration options marked ``hidden`` are valid values (hidden only keeps
  them out of HubSpot's pickers and forms); only options no longer listed are
  ``INVALID_OPTION``.
* A token without the scope a call needs gets 403 ``MISSING_SCOPES`` with the
  real body (``errors[].context.requiredGranularScopes``, ``links.scopes``);
  objects need ``crm.objects.{type}.read`` / ``.write``, properties
  ``crm.schemas.{type}.read``.

Knobs for tests and the demo: ``HubSpotState.rate_limit`` (a per-token rolling
window answering 429 ``TEN_SECONDLY_ROLLING`` with ``X-HubSpot-RateLimit-*``
headers), ``fail_next`` (fault injection, also after N good requests),
``expire_token``, ``revoke_scopes`` (403 ``MISSING_SCOPES`` for one object
type), and a request log (``requests``) that never holds the token.

``seed_default_portal`` fills a state with a realistic portal (deals with two
pipelines whose closed stages share their labels, companies, contacts, leads,
meetings); ``create_app`` wraps a state in a Starlette app that
``simulators.server.ServedApp`` can serve.

Modules: ``state`` (``HubSpotState``), ``knobs`` (request log, faults, rate
limit), ``schema`` (object types, property and pipeline shapes), ``values``
(wire forms of values and timestamps), ``validation`` (property values),
``api`` (the operations), ``routes`` (URL patterns and scopes), ``errors``
(HubSpot's error bodies), ``app`` (the ASGI app), ``seed`` (the default
portal).
"""

from simulators.hubspot.api import MAX_BATCH
from simulators.hubspot.app import create_app
from simulators.hubspot.errors import AUTH_MESSAGE, SCOPES_MESSAGE
from simulators.hubspot.knobs import LoggedRequest
from simulators.hubspot.routes import SCOPE_ACCESS
from simulators.hubspot.schema import PROPERTY_TYPES
from simulators.hubspot.seed import (
    DEAL_STAGES_DEFAULT,
    DEAL_STAGES_RENEWALS,
    LEAD_STAGES,
    RENEWALS_PIPELINE,
    seed_default_portal,
)
from simulators.hubspot.state import DEFAULT_TOKEN, HubSpotState
from simulators.hubspot.validation import MAX_STRING_LENGTH

__all__ = [
    "HubSpotState",
    "LoggedRequest",
    "create_app",
    "seed_default_portal",
    "DEFAULT_TOKEN",
    "MAX_BATCH",
    "MAX_STRING_LENGTH",
    "AUTH_MESSAGE",
    "DEAL_STAGES_DEFAULT",
    "DEAL_STAGES_RENEWALS",
    "LEAD_STAGES",
    "PROPERTY_TYPES",
    "RENEWALS_PIPELINE",
    "SCOPES_MESSAGE",
    "SCOPE_ACCESS",
]
