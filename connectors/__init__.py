"""CRM connectors: the ``Connector`` interface and one module per CRM.

Built-ins (``salesforce``, ``hubspot``) and third-party plugins are found the
same way, through the entry point group ``siro_writeback.connectors``; see
``connectors.registry``.
"""

from connectors.base import (
    AuthError,
    ConfigError,
    Connector,
    ConnectorError,
    CredentialError,
    FieldError,
    FieldSchema,
    FieldType,
    ModelTarget,
    ObjectSchema,
    Option,
    PermanentError,
    RecordState,
    RecordWrite,
    RecordWriteResult,
    SoftTimeLimit,
    TransientError,
    UnknownObject,
    WritebackError,
)

__all__ = [
    "AuthError",
    "ConfigError",
    "CredentialError",
    "Connector",
    "ConnectorError",
    "FieldError",
    "FieldSchema",
    "FieldType",
    "ModelTarget",
    "ObjectSchema",
    "Option",
    "PermanentError",
    "RecordState",
    "RecordWrite",
    "RecordWriteResult",
    "SoftTimeLimit",
    "TransientError",
    "UnknownObject",
    "WritebackError",
]
