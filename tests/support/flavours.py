"""Skips that say why: a test for one source flavour, or one needing servers the tests started."""

from __future__ import annotations

import pytest

from tests.support.harness import ServerHandle


def only_on(server: ServerHandle, flavour: str, why: str) -> None:
    """Skip unless the source is of this flavour; `why` says what the other one lacks."""
    if server.flavour != flavour:
        pytest.skip(f"{flavour} only: {why}")


def require_control(server: ServerHandle) -> None:
    if not server.controllable:
        pytest.skip("needs servers started by the tests (unset WACDC_TEST_*_URL)")
