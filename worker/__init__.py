"""siro-writeback: writes Siro's extracted conversation values back into the CRM.

The package holds the service side: settings, the Siro client and models, the
pure resolver, the pipeline, the ledger and the CLI. CRM-specific code lives in
the sibling package ``connectors``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``celery -A worker`` looks up ``worker.app``; import Celery only then, so
    # the CLI and the library stay light.
    if name == "app":
        from worker.service.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
