"""Finds connector classes by name through the ``siro_writeback.connectors`` entry points.

The built-in Salesforce and HubSpot connectors are registered the same way as
third-party plugins (see pyproject.toml), so a plugin needs nothing but an
installed distribution that declares::

    [project.entry-points."siro_writeback.connectors"]
    pipedrive = "writeback_pipedrive:PipedriveConnector"
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from connectors.base import Connector

GROUP = "siro_writeback.connectors"

# Used only when the distribution's metadata is missing (running from a source
# tree that was never installed); an installed entry point of the same name wins.
_BUILT_INS = {
    "salesforce": "connectors.salesforce:SalesforceConnector",
    "hubspot": "connectors.hubspot:HubSpotConnector",
}


class UnknownConnector(LookupError):
    pass


def available() -> dict[str, EntryPoint]:
    found = {name: EntryPoint(name=name, value=target, group=GROUP) for name, target in _BUILT_INS.items()}
    for entry in entry_points(group=GROUP):
        found[entry.name] = entry
    return found


def load(name: str) -> type[Connector]:
    """The connector class registered as ``name``."""
    entries = available()
    entry = entries.get(name)
    if entry is None:
        raise UnknownConnector(f"unknown connector {name!r} (installed: {', '.join(sorted(entries))})")
    try:
        loaded = entry.load()
    except Exception as exc:  # a broken plugin must not look like a missing one
        raise UnknownConnector(f"connector {name!r} could not be loaded from {entry.value}: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Connector)):
        raise UnknownConnector(f"connector {name!r} ({entry.value}) is not a connectors.base.Connector subclass")
    return loaded


__all__ = ["GROUP", "UnknownConnector", "available", "load"]
