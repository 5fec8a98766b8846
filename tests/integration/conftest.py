"""Fixtures shared by the integration tests that fuzz a running portal."""

from __future__ import annotations

import pytest

from tests.fixtures.live import fuzzing_env, portal_process


@pytest.fixture(scope="module")
def live_portal(services, echo_upstream, tmp_path_factory):
    """One portal process for the module; every test's own teams come and go under it."""
    env = fuzzing_env(echo_upstream.url)
    with portal_process(services, tmp_path_factory.mktemp("fuzz"), env) as base_url:
        yield base_url
