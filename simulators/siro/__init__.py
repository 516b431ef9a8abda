"""Siro external API simulator: the recordings endpoints, the integration connections list and
caller identity.

At least as strict as Siro's published API (``shared/siro/siro-external-api.openapi.json``);
where the documentation leaves room, it picks the stricter reading:

- ``Authorization: Bearer <token>`` with a token known to the state, else 401;
  recordings are scoped to the token's organization (others' are 404);
- the enrichment blocks ``crm``, ``entityExtractions``, ``summary`` (and
  ``evaluationScore``, ``followups``) appear only when their flag is exactly
  ``"true"``; flag values other than ``"true"``/``"false"`` are 400;
- unknown and repeated query parameters are 400 (a typo such as
  ``updatedAt:ge`` must not silently widen a poll);
- list filters take exactly ``YYYY-MM-DDTHH:mm:ss.sssZ`` (the documented
  format; ``SiroState(strict_timestamps=False)`` accepts any ISO 8601);
- ``pageSize`` is an integer 1..100 (default 25), anything else 400;
- the ``cursor`` is opaque and signed, bound to the filters it was issued for:
  a tampered cursor, or one sent with other filters, is 400; the filters must
  be sent again with every cursor;
- listings are ordered by ``updatedAt`` then ``id``; the cursor is a keyset
  position, so a recording updated mid-walk moves to the end instead of
  shifting the pages (nothing is skipped);
- 1000 requests per minute per token (every request counts, rejected ones
  too), answered 429 with no ``Retry-After`` (Siro sends no rate headers);
- ``GET /v1/core/integrations/connections`` takes ``integrationPlatform``
  (one of the documented values, exactly) and ``cursor``, nothing else
  (``pageSize`` is not documented there: 400); pages of
  ``connection_page_size`` (25) ordered by ``createdAt`` then ``id``, with
  signed keyset cursors bound to the filter, as above.

Error bodies are ``{"error": "<code>", "message": "<text>"}`` (Siro does not
document its error shape, so clients must not depend on it).

``SiroState`` is the in-memory, thread-safe store: seed it with
``add_token``, ``add_recording``/``put_recording``, ``link``,
``update_recording``, ``add_connection``/``put_connection``; inspect
``requests`` (the request log); inject faults with ``fail_next``. ``create_app(state)`` gives the ASGI app, and
``app.state.siro`` may be swapped for a fresh state between tests.

Modules: ``state`` (``SiroState``), ``recordings`` (recording shapes,
timestamps, links, rendering), ``params`` (strict query parameters),
``listing`` (filters and keyset paging), ``connections`` (the integration
connections listing), ``errors`` (error answers), ``app`` (the ASGI app).
"""

from simulators.siro.app import SiroApi, create_app
from simulators.siro.connections import (
    CONNECTION_PAGE_SIZE,
    CONNECTION_PARAMS,
    PLATFORMS,
)
from simulators.siro.params import (
    DEFAULT_PAGE_SIZE,
    GET_PARAMS,
    LIST_PARAMS,
    MAX_PAGE_SIZE,
    STATUS_FILTERS,
    TIME_FILTERS,
)
from simulators.siro.recordings import (
    ENRICHMENT_KEYS,
    ENRICHMENTS,
    WEB_APP_URL,
    iso,
    parse_ts,
)
from simulators.siro.state import (
    DEFAULT_ORGANIZATION_ID,
    RATE_LIMIT_PER_MINUTE,
    LoggedRequest,
    SiroState,
)

__all__ = [
    "CONNECTION_PAGE_SIZE",
    "CONNECTION_PARAMS",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_PAGE_SIZE",
    "ENRICHMENTS",
    "ENRICHMENT_KEYS",
    "GET_PARAMS",
    "LIST_PARAMS",
    "LoggedRequest",
    "MAX_PAGE_SIZE",
    "PLATFORMS",
    "RATE_LIMIT_PER_MINUTE",
    "STATUS_FILTERS",
    "SiroApi",
    "SiroState",
    "TIME_FILTERS",
    "WEB_APP_URL",
    "create_app",
    "iso",
    "parse_ts",
]
