"""Suite-wide fixtures: each module under tests/fixtures serves one party."""

pytest_plugins = [
    "tests.fixtures.salesforce",
    "tests.fixtures.hubspot",
    "tests.fixtures.siro",
    "tests.fixtures.databases",
    "tests.fixtures.redis",
    "tests.fixtures.service",
    "tests.fixtures.memory_crm",
]
