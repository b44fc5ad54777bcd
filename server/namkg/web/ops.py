"""What operators read: ``/healthz`` (liveness and readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import hmac

from flask import Response, request

from ..config import Config
from .metrics import CONTENT_TYPE


class Operations:
    """The two monitoring views over the served build (``state``), the executor and the
    metrics; ``/healthz`` shows the store path, PIDs and sandbox only to the admin token."""

    def __init__(self, config: Config, state, executor, metrics):
        self.config, self.state, self.executor, self.recorded = config, state, executor, metrics

    def healthz(self):
        stats = self.executor.stats()
        ready = stats.get("workers", 0) > 0
        public = {k: v for k, v in stats.items() if k != "pids"}
        body = {"status": "ok" if ready else "starting", "build": self.state.path.name,
                "triples": self.state.triples, "executor": public}
        token = self.config.admin_token
        given = request.headers.get("Authorization", "")
        if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            body.update(store=str(self.state.path), executor=stats,
                        sandbox=self.executor.sandbox)
        return body, 200 if ready else 503

    def metrics(self) -> Response:
        text = self.recorded.render(self.executor.stats())
        return Response(text, content_type=CONTENT_TYPE)
