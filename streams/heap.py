"""Keep the cyclic garbage collector's full passes short in long-running stages."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Move every object alive now (imported modules, the app's wiring) out of the collector's reach.

    A stage imports ~200,000 tracked objects (faust, aiokafka, pydantic, numpy, the rules) that live
    as long as the process. A full (generation 2) collection walks all of them: in the alert
    processor that was a 100-550 ms stop of the event loop a few times a minute, the tail of its
    capture -> webhook latency (docs/benchmarks.md). Frozen objects are never scanned; reference
    counting still frees them. Call once, after start-up and before the first record.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
