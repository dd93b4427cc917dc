"""The Sightline HTTP API: detection on demand, model operations, camera state and the live view."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from inference.detector import Detector
from sightline.api import errors
from sightline.api.alert_index import AlertIndex
from sightline.api.batcher import DetectBatcher
from sightline.api.mjpeg import FrameRenderer, LiveFeeds
from sightline.api.probe import DependencyProbe
from sightline.api.render import FrameFetcher
from sightline.api.routes import (
    cameras,
    detect,
    evidence,
    health,
    live,
    models,
    review,
    rules,
    rules_editor,
    session,
    stream,
)
from sightline.api.rules_state import RulesState, file_rules
from sightline.api.tail import TailConsumer, TailState
from sightline.config import SightlineConfig
from sightline.drawing import camera_rules
from sightline.evidence.store import LocalDirStore
from sightline.review.verdicts import VerdictView
from streams.health import Health


def create_app(
    config: SightlineConfig,
    *,
    tail: bool = True,
    load_model: bool = True,
    detector: Detector | None = None,
) -> FastAPI:
    """`tail=False` skips the Kafka tail thread (e.g. a detect-only benchmark without a broker)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        probe = app.state.probe = DependencyProbe(config, app.state.health)
        probe.start()
        app.state.live_feeds.start(asyncio.get_running_loop())
        tail_thread = TailConsumer(config, app.state.tail_state, app.state.health) if tail else None
        if tail_thread is not None:
            tail_thread.start()
            app.state.rules_state.start()  # the overlays follow the rules version in force
            app.state.verdicts.start()
        if load_model:
            batcher = DetectBatcher(config, detector)
            await batcher.start()
            app.state.batcher = batcher
        try:
            yield
        finally:
            app.state.stopping.set()
            await app.state.live_feeds.close()
            if app.state.batcher is not None:
                await app.state.batcher.close()
            if tail_thread is not None:
                tail_thread.stop()
                tail_thread.join(timeout=5)
                app.state.rules_state.stop()
                app.state.verdicts.stop()
                app.state.verdicts.join(timeout=5)
            if app.state.feedback_producer is not None:
                app.state.feedback_producer.flush(5)
            probe.stop()
            app.state.fetcher.close()

    app = FastAPI(
        title="Sightline API",
        version="1",
        description="Streaming video analytics over Kafka: detect, models, cameras, alerts, live view.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.batcher = None
    app.state.probe = None
    # Kafka, Redis and the tail: /readyz, the dependency gauge and one log line per change.
    app.state.health = Health("api")
    app.state.tail_state = TailState(config)
    app.state.fetcher = FrameFetcher(config, app.state.health)
    app.state.rules = camera_rules(config)
    app.state.rules_state = RulesState(config, file_rules(config), app.state.rules)
    app.state.evidence_store = LocalDirStore(config.evidence.dir)
    # Review verdicts (the feedback topic) and the alerts the review page lists.
    app.state.verdicts = VerdictView(config.kafka, config.topics.feedback.name)
    app.state.feedback_producer = None
    app.state.alert_index = AlertIndex(
        app.state.evidence_store, app.state.tail_state, app.state.verdicts, config.api.recent_alerts
    )
    # Annotated frames for frame.jpg and the live MJPEG streams.
    renderer = FrameRenderer(
        app.state.tail_state, app.state.fetcher, app.state.rules, config.api.live_jpeg_quality
    )
    app.state.live_feeds = LiveFeeds(renderer)
    # Set on shutdown so open SSE streams end instead of holding the server up.
    app.state.stopping = threading.Event()
    errors.install(app)
    for module in (
        health,
        detect,
        models,
        cameras,
        evidence,
        review,
        stream,
        live,
        session,
        rules,
        rules_editor,
    ):
        app.include_router(module.router)
    return app
