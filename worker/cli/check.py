"""``writeback check [--json]``: the config, Siro's token and each CRM's credentials and schema.

Every finding is a ``Finding`` (ok, warn or fail, what it is about, a
message); the command prints them as lines or as one JSON object and exits 2
when any failed, so a deployment can gate on it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.markup import escape

from connectors.base import Connector
from worker.cli.exits import EXIT_OK, EXIT_USAGE
from worker.cli.render import terminal
from worker.errors import UnknownObject, WritebackError
from worker.pipeline.connector_pool import ConnectorPool
from worker.pipeline.rules import unknown_entries
from worker.runtime import siro_client
from worker.settings import ConnectionConfig, Settings
from worker.siro.client import SiroError

OK, WARN, FAIL = "ok", "warn", "fail"
_STYLE = {OK: "[green]ok[/]  ", WARN: "[yellow]warn[/]", FAIL: "[red]FAIL[/]"}


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warn | fail
    subject: str  # "siro", a connection's name
    message: str


def check(settings: Settings, *, as_json: bool = False) -> int:
    findings = [_check_siro(settings)]
    if findings[0].level == OK:  # else listing Siro's connections would fail the same way
        findings += _check_siro_connections(settings)
    if not settings.config.connections:
        findings.append(Finding(FAIL, "config", "no [[connections]] configured"))
    pool = ConnectorPool(settings.config)
    try:
        for connection in settings.config.connections:
            findings += check_connection(pool, connection)
    finally:
        pool.close()
    failed = any(finding.level == FAIL for finding in findings)
    if as_json:
        print(json.dumps({"ok": not failed, "findings": [asdict(finding) for finding in findings]}))
    else:
        show(terminal(), findings)
    return EXIT_USAGE if failed else EXIT_OK


def show(console: Console, findings: list[Finding]) -> None:
    for finding in findings:
        # Messages are printed as they are: "[[connections]]" is text, not rich markup.
        console.print(f"{_STYLE[finding.level]} {escape(finding.subject)}: {escape(finding.message)}")


def _check_siro(settings: Settings) -> Finding:
    where = f"siro {settings.siro_api_url}"
    with siro_client(settings) as siro:
        try:
            who = siro.caller_identity()
        except SiroError as exc:
            return Finding(FAIL, where, str(exc))
    return Finding(OK, where, f"token {who.token_name!r} of organization {who.organization_id}")


def _check_siro_connections(settings: Settings) -> list[Finding]:
    """A warning for each active Siro connection that no ``[[connections]]`` entry serves (its
    recordings would fail with ``no_connection``); Siro failing to list them is a warning too."""
    from worker.cli.connections import served, unserved

    where = "siro connections"
    with siro_client(settings) as siro:
        try:
            rows = served(settings.config, siro.list_connections())
        except SiroError as exc:
            return [Finding(WARN, where, f"could not list Siro's integration connections: {exc}")]
    missing = [row for row in rows if unserved(row)]
    if not missing:
        return [Finding(OK, where, f"{len(rows)} listed; every active one is served by a [[connections]] entry")]
    return [Finding(WARN, f"siro connection {row['id']}",
                    f"active connection {row['name']!r} ({row['integrationPlatform']}) is served by no "
                    "[[connections]] entry: its recordings fail with reason no_connection")
            for row in missing]


def check_connection(pool: ConnectorPool, connection: ConnectionConfig) -> list[Finding]:
    """One connection's credentials and the schema of every object its model map names."""
    name = connection.display_name
    try:
        connector = pool.get(connection)
        findings = [Finding(OK, name, connector.check())]
    except (WritebackError, NotImplementedError) as exc:
        return [Finding(FAIL, name, str(exc) or type(exc).__name__)]
    objects = sorted({target.object for target in pool.model_map(connection).values() if target.object})
    for object_name in objects:
        try:
            schema = connector.object_schema(object_name)
        except UnknownObject:
            # Not every org has every object (HubSpot leads, say): mappings to it will be unknown_model.
            findings.append(Finding(WARN, name, f"the CRM has no {object_name} object"))
            continue
        except WritebackError as exc:
            findings.append(Finding(FAIL, name, f"{object_name}: {exc}"))
            continue
        writable = sum(1 for f in schema.fields.values() if f.writable)
        findings.append(Finding(OK, name, f"{object_name} ({len(schema.fields)} fields, {writable} writable)"))
    return findings + _rule_findings(pool, connection, connector) + _notes_findings(connection, connector)


def _notes_findings(connection: ConnectionConfig, connector: Connector) -> list[Finding]:
    """Whether the summary notes the config asks for can be written (``[connections.notes]``)."""
    notes, name = connection.notes, connection.display_name
    if not notes.enabled:
        return []
    if not connector.notes_supported:
        return [Finding(WARN, name, f"notes are enabled but connector {connector.name!r} does not write "
                                    "notes: they will be unsupported")]
    slots = [slot for slot in notes.attach_to if slot in connector.note_targets]
    if not slots:
        return [Finding(WARN, name, f"notes are enabled but none of attach_to ({', '.join(notes.attach_to)}) "
                                    f"can take a {connector.note_object}")]
    on = ", ".join(f"{slot} ({connector.note_targets[slot]})" for slot in slots)
    return [Finding(OK, name, f"summary notes as {connector.note_object} on {on}")]


def _rule_findings(pool: ConnectorPool, connection: ConnectionConfig, connector: Connector) -> list[Finding]:
    """Each deny, allow, policy and models entry naming what the CRM does not have (``rules``)."""
    name = connection.display_name
    try:
        problems = unknown_entries(connection, connector, pool.model_map(connection))
    except WritebackError as exc:
        return [Finding(FAIL, name, f"the rules could not be checked: {exc}")]
    if not problems:
        entries = len(connection.fields.entries()) + len(connection.models)
        known = f"{entries} deny/allow/policy/models entries name what the CRM has"
        return [Finding(OK, name, known)] if entries else []
    return [Finding(FAIL, name, f"{problem}: nothing is written on this connection until it is fixed")
            for problem in problems]
