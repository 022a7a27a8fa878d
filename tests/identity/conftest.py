"""The operator's end-to-end fixtures (tests/operator/conftest.py), for the token tests that need a Tenant."""

from tests.operator.conftest import platform, pytest_runtest_makereport, running_operator  # noqa: F401
