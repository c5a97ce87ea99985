"""Helpers shared by the tests, imported as ``tests.support.<module>`` (never from a conftest or a test
module): sample events, the seeded collection, the stores under test, generated documents."""
