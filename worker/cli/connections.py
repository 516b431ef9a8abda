"""``writeback connections [--json]``: Siro's integration connections and the entry serving each.

Lists every page of ``GET /v1/core/integrations/connections`` and, for each
connection, the ``[[connections]]`` entry a recording linked through it is
written by (``WritebackConfig.connection_for``: its exact id first, then
``"*"``), or none: such a recording fails with reason ``no_connection``.
Only Siro is called, so the CRM's secrets need not be set. ``--json`` prints
``{"connections": [{"id", "name", "integrationPlatform", "isActive",
"servedBy"}]}`` (DESIGN §6). Exit 0; a Siro error ends the command with one
line on stderr (``worker.cli.main``: a rejected token or a wrong
``SIRO_API_URL`` 2, Siro down 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from worker.cli.exits import EXIT_OK
from worker.cli.render import terminal
from worker.runtime import siro_client
from worker.settings import Settings, WritebackConfig
from worker.siro.models import IntegrationConnection


def run(args: Any, settings: Settings) -> int:
    with siro_client(settings) as siro:
        connections = siro.list_connections()
    rows = served(settings.config, connections)
    if args.json:
        print(json.dumps({"connections": rows}, ensure_ascii=False))
    else:
        show(terminal(), rows)
    return EXIT_OK


def served_by(config: WritebackConfig, connection: IntegrationConnection) -> str | None:
    """The name of the ``[[connections]]`` entry chosen for this Siro connection (``"*"`` counts)."""
    entry = config.connection_for(connection.id)
    return entry.display_name if entry is not None else None


def served(config: WritebackConfig, connections: Iterable[IntegrationConnection]) -> list[dict[str, Any]]:
    """Each connection as ``--json`` prints it."""
    return [
        {"id": c.id, "name": c.name, "integrationPlatform": c.integration_platform, "isActive": c.is_active,
         "servedBy": served_by(config, c)}
        for c in connections
    ]


def unserved(row: dict[str, Any]) -> bool:
    """An active connection (or one whose state Siro did not say) that no entry serves."""
    return row["servedBy"] is None and row["isActive"] is not False


def show(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("Siro lists no integration connections for this token's organization.")
        return
    table = Table(title="Siro integration connections", title_justify="left")
    for header in ("id", "name", "platform", "active", "served by"):
        table.add_column(header, overflow="fold")
    for row in rows:
        active = {True: "yes", False: "no"}.get(row["isActive"], "?")
        if row["servedBy"] is not None:
            serving = Text(row["servedBy"])
        else:
            serving = Text("none", style="bold yellow" if unserved(row) else "dim")
        # Names come from Siro: text, never rich markup.
        table.add_row(Text(row["id"]), Text(row["name"] or ""), Text(row["integrationPlatform"] or ""),
                      Text(active, style="" if row["isActive"] else "dim"), serving)
    console.print(table)
    console.print(Text(summary(rows)))


def summary(rows: list[dict[str, Any]]) -> str:
    active = sum(1 for row in rows if row["isActive"] is True)
    text = f"{len(rows)} connection{'s' if len(rows) != 1 else ''}, {active} active"
    missing = sum(1 for row in rows if unserved(row))
    if missing:
        text += f"; {missing} active one{'s' if missing != 1 else ''} served by no [[connections]] entry (no_connection)"
    else:
        text += "; every active one is served"
    return text
