"""``Ledger``: the one object callers hold, composed from the ledger's concerns.

Each concern is a mixin over the shared engine holder
(:class:`~worker.ledger.engine.Database`: URL, engine, transactions,
migrations) and lives in its own module:

* ``runs.py``: runs and their field attempts (``start_run``, ``record``,
  ``finish_run``, ``runs``, ``attempts``, ``newest_versions``);
* ``intents.py``: write intents and the values ``protect_edits`` counts as
  ours (``record_intents``, ``intents``, ``protected_values``, ``our_values``,
  ``last_written``); ``record`` settles intents through it;
* ``history.py``: what ``writeback history`` reads (``history``,
  ``record_history``);
* ``dead_letters.py``: the dead-letter list;
* ``watermarks.py``: named watermarks (``poll``);
* ``proposals.py``: field values held for a person's review (policy ``review``);
* ``reverts.py``: what a revert puts back, and the recording versions that stand reverted;
* ``notes.py``: the summary notes the CRM holds for us, and each run's note outcomes.
"""

from __future__ import annotations

from .dead_letters import DeadLetters
from .history import History
from .intents import Intents
from .proposals import Proposals
from .reverts import Reverts
from .runs import Runs
from .watermarks import Watermarks

__all__ = ["Ledger"]


class Ledger(Runs, History, Intents, DeadLetters, Watermarks, Proposals, Reverts):  # History holds Notes
    """Runs and field attempts, write intents, dead letters and watermarks in a SQL database.

    ``Ledger(url)`` takes any SQLAlchemy URL (``WRITEBACK_DATABASE_URL``);
    ``Ledger.open(url)`` constructs and migrates. Thread-safe (one engine,
    pooled connections) and fork-aware: a process forked after the ledger was
    opened (Celery prefork) gets fresh connections. ``close()`` (or leaving a
    ``with`` block) closes the pooled connections; the object may be used again.
    """
