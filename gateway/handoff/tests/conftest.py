"""The staff API's test gateway (a migrated SQLite city, staff of every role) serves the inbox tests."""

from gateway.staff.tests.conftest import city_template  # noqa: F401  (a fixture)
