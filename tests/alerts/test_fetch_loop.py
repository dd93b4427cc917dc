"""alerts/faust_transport.py replaces faust's fetch loop (Consumer._drain_messages) with one that races a
rebalance once per fetched batch; it mirrors the loop of the faust version installed. This fails
when faust's loop changes, so the override is re-read against it before anyone relies on it."""

from __future__ import annotations

import inspect
import re

from faust.transport.consumer import Consumer

from alerts.faust_transport import CommittedConsumer


def test_the_fetch_loop_override_mirrors_the_installed_faust() -> None:
    upstream = inspect.getsource(Consumer._drain_messages)
    # Per message: the conductor's callback raced against a flow stop (what the override batches).
    assert re.search(
        r"await self\.wait_first\(\s*callback\(message\), self\.suspend_flow\.wait\(\)\s*\)", upstream
    )
    # The per-message bookkeeping the override keeps, in faust's words.
    for step in (
        "get_read_offset(tp)",
        "self._add_gap(tp, r_offset + 1, offset)",
        "self._n_acked >= commit_every",
        "set_read_offset(tp, offset)",
        "getmany(timeout=1.0)",
    ):
        assert step in upstream, step
    assert CommittedConsumer._drain_messages is not Consumer._drain_messages
