"""pytest's detailed assertion messages for the contract suite, which lives in ``connectors.testing``."""

import pytest

pytest.register_assert_rewrite("connectors.testing")
