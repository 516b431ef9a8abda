"""``writeback console [--host 127.0.0.1] [--port 8090]``: serve the operator web console.

Refuses to start (a config error: one line, exit 2) without
``WRITEBACK_CONSOLE_TOKEN`` (or ``_FILE``), the token operators sign in with.
The console reads the ledger, approves and reverts through the CRM connections
of the config (so their secrets must be set, as for ``writeback revert``) and
hands dead letters back to the workers through the broker. Its access log and
every page go through the process's redaction filter.
"""

from __future__ import annotations

import os
from typing import Any

from worker.cli.exits import EXIT_OK
from worker.settings import Settings


def run(args: Any, settings: Settings) -> int:
    from worker.console.app import create_app
    from worker.console.auth import console_token
    from worker.console.operations import Operations
    from worker.logs import redaction_for
    from worker.runtime import Runtime
    from worker.service.celery_app import configure
    from worker.service.webhook import serve

    token = console_token(os.environ)
    configure(settings)  # Retry enqueues through this settings' broker
    rt = Runtime(settings, redis_optional=True, in_task=False, with_siro=False)
    _ = rt.ledger  # a ledger that cannot open is a config error now, not a broken page later
    ops = Operations(rt)
    try:
        serve(create_app(ops, token, redactor=redaction_for(settings, token)), args.host, args.port)
    finally:
        ops.close()
    return EXIT_OK
