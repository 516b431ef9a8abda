"""Column types the migrations share: facts of the databases, not of ``schema.py``.

A migration must not change when ``schema.py`` does, so the migrations do not
import the models; these two types are what every migration means by an id and
by a JSON value, and they never change.
"""

import sqlalchemy as sa

#: BIGINT identities on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the auto-incrementing rowid.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: JSON on PostgreSQL; JSON text with TEXT affinity on SQLite (a column declared JSON gets NUMERIC
#: affinity there, which turns '12500.0' into 12500).
JSON_VALUE = sa.JSON(none_as_null=True).with_variant(sa.Text(), "sqlite")
