"""A connection's field rules held against the CRM: every entry must name what the CRM has.

``deny``, ``allow``, ``policy`` and ``models`` entries name CRM objects and
fields (or model aliases of the objects). A misspelt entry matches nothing:
``deny = ["Opportunty.Amount"]`` would deny nothing and the real
``Opportunity.Amount`` would be written, the opposite of what the operator
meant. So every entry is checked against the CRM's schema:

* ``writeback check`` reports each unknown entry and exits 2;
* the pipeline refuses the whole connection until the config is fixed (fail
  closed): nothing is written on it, its recordings fail with reason
  ``config`` (the worker dead-letters them; ``writeback retry`` replays them
  once fixed). Refusing rather than guessing: the intended target of a
  misspelt entry is unknown, so no narrower refusal is safe.

The schema lookups are the connector's (cached for the life of the process);
a transient failure propagates, so that the check is made again later.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from connectors.base import Connector, ModelTarget, UnknownObject
from worker.settings import ConnectionConfig


def unknown_entries(connection: ConnectionConfig, connector: Connector,
                    model_map: Mapping[str, ModelTarget]) -> list[str]:
    """One line per entry whose object or field the CRM does not have (empty: all known)."""
    problems = []
    objects = [target.object for target in model_map.values() if target.object]  # what a guess may suggest
    for kind, entry in connection.fields.entries():
        object_part, _, field_part = entry.strip().partition(".")
        target = model_map.get(object_part.strip().casefold())
        if target is not None and target.object is None:
            continue  # a model the connector cannot write: nothing of it is ever written
        object_name = target.object if target is not None else object_part.strip()
        why = _unknown(connector, object_name, field_part.strip(), objects)
        if why:
            problems.append(f"{kind} entry {entry!r}: {why}")
    for alias, override in connection.models.items():
        if override.object:
            why = _unknown(connector, override.object, None, objects)
            if why:
                problems.append(f"models entry {alias!r}: {why}")
    return problems


def _unknown(connector: Connector, object_name: str, field_name: str | None, objects: list[str]) -> str | None:
    try:
        schema = connector.object_schema(object_name)
    except UnknownObject:
        return f"the CRM has no object {object_name!r}{_guess(object_name, objects)}"
    if field_name is not None and schema.field(field_name) is None:
        return f"the CRM's {schema.name} has no field {field_name!r}{_guess(field_name, schema.fields)}"
    return None


def _guess(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'Amount'?)`` when one known name is close, else nothing."""
    by_fold = {candidate.casefold(): candidate for candidate in known if candidate.casefold() != name.casefold()}
    close = difflib.get_close_matches(name.casefold(), list(by_fold), n=1, cutoff=0.8)
    return f" (did you mean {by_fold[close[0]]!r}?)" if close else ""
