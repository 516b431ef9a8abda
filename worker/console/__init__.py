"""The operator web console (DESIGN §6, §8; ``writeback console``): server-rendered pages on the ledger.

``app`` (the routes, headers, templates), ``auth`` (the token, session
cookies, CSRF tokens), ``operations`` (every read and action, through what the
CLI calls; the recent-runs page reads ``Ledger.recent_runs``);
``templates/`` and ``static/console.css``. No JavaScript.
"""
