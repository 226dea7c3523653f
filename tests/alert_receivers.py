"""The receiving end of alert notifications, in the test process: a real SMTP server (aiosmtpd) and a
real HTTP server that verifies each webhook's Standard Webhooks signature, as a receiver would."""

from __future__ import annotations

import base64
import email
import json
import os
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import free_port


class MailBox:
    """An SMTP server on 127.0.0.1; `mails` are the messages it took, parsed."""

    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.mails.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def message_ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.mails]

    def __enter__(self) -> MailBox:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class WebhookReceiver:
    """An HTTP server that takes only correctly signed webhooks; `received` lists each accepted
    delivery's webhook-id (a second copy of one too: the test counts distinct ids). The first
    `fail_first` deliveries are answered 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        self.received: list[str] = []
        self.bodies: dict[str, dict] = {}
        self.refused = 0
        self.fail_first = fail_first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    receiver.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver._lock:
                    if receiver.fail_first > 0:
                        receiver.fail_first -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    webhook_id = self.headers["webhook-id"]
                    receiver.received.append(webhook_id)
                    receiver.bodies[webhook_id] = json.loads(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/alerts"

    def distinct(self) -> set[str]:
        with self._lock:
            return set(self.received)

    def env(self) -> dict[str, str]:
        """The environment a hub reads this receiver's URL and secret from (contracts/alerts.yaml)."""
        return {"HUB_ALERT_WEBHOOK_URL": self.url, "HUB_ALERT_WEBHOOK_SECRET": self.secret}

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
