"""The staff API's test gateway (a migrated SQLite city, staff of every role) and the stand-in Rasa
serve the inbox tests."""

from gateway.staff.tests.conftest import city_template  # noqa: F401  (fixtures)
from tests.conftest import rasa  # noqa: F401
