"""siro-writeback: writes Siro's extracted conversation values back into the CRM.

The package holds the service side: settings, the Siro client and models, the
pure resolver, the pipeline, the ledger and the CLI. CRM-specific code lives in
the sibling package ``connectors``.
"""

__version__ = "0.1.0"
