"""One connector instance per configured connection, built on first use.

The pool turns a ``[[connections]]`` table into a live connector: it finds the
class through the registry (entry points), rejects keys the connector does
not read, and keeps the instance (and so its schema cache) for the process.
``gate_factory`` (``worker.limits.rate.gate_factory``) gives each instance the
gate that paces its requests with every other worker's.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from connectors import registry
from connectors.base import Connector, Gate
from worker.errors import ConfigError
from worker.settings import ConnectionConfig, MissingSecret, WritebackConfig

log = logging.getLogger(__name__)


class ConnectorPool:
    """One connector instance per configured connection, built on first use."""

    def __init__(
        self,
        config: WritebackConfig,
        factory: Callable[[ConnectionConfig, type[Connector]], Connector] | None = None,
        gate_factory: Callable[[ConnectionConfig, type[Connector]], Gate] | None = None,
        *,
        classes: Mapping[str, type[Connector]] | None = None,
    ) -> None:
        """``classes``: connector classes by name beside the installed entry points (tests, embedding)."""
        self.config = config
        self._factory = factory or (lambda connection, cls: cls(connection.options))
        self._gate_factory = gate_factory
        self._classes: dict[str, type[Connector]] = dict(classes or {})
        self._unchecked: set[str] = set()  # connectors without option_names, warned about once
        self._instances: dict[str, Connector] = {}
        self._maps: dict[str, dict[str, Any]] = {}

    def connector_class(self, connection: ConnectionConfig) -> type[Connector]:
        cls = self._classes.get(connection.connector)
        if cls is None:
            try:
                cls = registry.load(connection.connector)
            except registry.UnknownConnector as exc:
                raise ConfigError(f"connection {connection.display_name!r}: {exc}") from None
            self._classes[connection.connector] = cls
        return cls

    def model_map(self, connection: ConnectionConfig) -> dict[str, Any]:
        """The connector's model map with the connection's overrides (built once per connection)."""
        name = connection.display_name
        if name not in self._maps:
            self._maps[name] = connection.model_map(self.connector_class(connection).default_models)
        return self._maps[name]

    def validate(self, *, build: bool) -> None:
        """Check every connection before any work, failing closed with a ``ConfigError``: the
        connector exists, its table names only keys it reads, its rate limits make sense and,
        with ``build``, its options build a connector (no network: a connector's constructor
        does no I/O; a process that talks to no CRM passes ``build=False``)."""
        from worker.limits.rate import gate_for

        for connection in self.config.connections:
            cls = self._checked_class(connection)
            try:
                gate_for(connection, cls, None)
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigError(f"connection {connection.display_name!r}: rate_limit: {exc}") from None
            if build:
                self._build(connection, cls).close()

    def get(self, connection: ConnectionConfig) -> Connector:
        name = connection.display_name
        if name not in self._instances:
            cls = self._checked_class(connection)
            instance = self._build(connection, cls)
            if self._gate_factory is not None:
                try:
                    instance.gate = self._gate_factory(connection, cls)
                except (ValueError, TypeError, KeyError) as exc:
                    instance.close()
                    raise ConfigError(f"connection {name!r}: rate_limit: {exc}") from None
                except BaseException:
                    instance.close()
                    raise
            self._instances[name] = instance
        return self._instances[name]

    def _checked_class(self, connection: ConnectionConfig) -> type[Connector]:
        """The connector class, once the connection's table names only keys it reads."""
        cls = self.connector_class(connection)
        if cls.option_names is None and connection.connector not in self._unchecked:
            self._unchecked.add(connection.connector)
            log.warning("connector %r declares no option_names: the keys of its connections cannot be checked "
                        "(a misspelt key is ignored); its author should declare them", connection.connector)
        unknown = sorted(set(connection.options) - cls.option_names) if cls.option_names is not None else []
        if unknown:
            raise ConfigError(
                f"connection {connection.display_name!r}: unknown key {unknown[0]!r} for connector "
                f"{connection.connector!r} (it reads: {', '.join(sorted(cls.option_names or ()))})"
            )
        return cls

    def _build(self, connection: ConnectionConfig, cls: type[Connector]) -> Connector:
        missing = next((value for value in connection.options.values() if isinstance(value, MissingSecret)), None)
        if missing is not None:
            raise missing.error()
        try:
            return self._factory(connection, cls)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"connection {connection.display_name!r}: {exc}") from None

    def close(self) -> None:
        for connector in self._instances.values():
            connector.close()
        self._instances.clear()
