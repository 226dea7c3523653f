"""The two ways a notification leaves the hub: an e-mail (smtplib) and a signed webhook (Standard Webhooks).

Both are sent at least once and carry the notification's id, which never changes: the webhook as
its `webhook-id` (a Standard Webhooks receiver drops an id it has seen), the mail as its Message-ID.
A notification sent again after a crash is therefore the same notification, not a second one.

What they say is the alert's sentence (ids, counts, a case reference) and a link to the console
page; no personal data. A failure raises `SendFailed` with a one-line reason (no secret, no URL
query) for the backoff and the notification's `last_error`.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from hub.alerts.rules import Channel
from hub.config import Settings

#: seconds a mail server or a webhook receiver may take to answer
SEND_SECONDS = 10.0


class SendFailed(Exception):
    """The notification did not go out; the message says why in one line."""


@dataclass(frozen=True)
class Note:
    """What one notification says: its id (webhook-id, Message-ID), the firing and where it links."""

    id: str
    alert_id: str
    severity: str
    subject: str
    text: str
    link: str
    since: dt.datetime
    case_id: str | None
    episode: int

    def payload(self) -> dict[str, Any]:
        """The webhook's body, in the Standard Webhooks shape: type, timestamp, data."""
        return {
            "type": "alert.firing",
            "timestamp": self.since.isoformat(),
            "data": {"alert": self.alert_id, "severity": self.severity, "subject": self.subject, "text": self.text,
                     "link": self.link, "case": self.case_id, "episode": self.episode, "since": self.since.isoformat()},
        }


def send(channel: Channel, note: Note, settings: Settings) -> None:
    if channel.kind == "mail":
        send_mail(channel, note, settings)
    else:
        send_webhook(channel, note)


def message_id(note: Note) -> str:
    return f"<{note.id}.alert@casechain-hub>"


def send_mail(channel: Channel, note: Note, settings: Settings) -> None:
    if not settings.smtp_url:
        raise SendFailed("HUB_SMTP_URL is not set: no mail server to send through")
    url = urlsplit(settings.smtp_url)
    if url.scheme not in ("smtp", "smtps", "smtp+starttls") or not url.hostname:
        raise SendFailed("HUB_SMTP_URL is not smtp://host:port, smtp+starttls://host:port or smtps://host:port")
    mail = EmailMessage()
    mail["Subject"] = f"[{note.severity}] {' '.join(note.text.split())}"[:200]  # a header is one line
    mail["From"] = settings.alert_mail_from
    mail["To"] = ", ".join(channel.mail)
    mail["Message-ID"] = message_id(note)
    mail["Date"] = format_datetime(note.since)
    mail["X-Hub-Alert"] = note.alert_id
    mail.set_content(f"{note.text}\n\nSeverity: {note.severity}\nSince: {note.since.isoformat()}\n\n{note.link}\n")
    try:
        if url.scheme == "smtps":
            server: smtplib.SMTP = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=SEND_SECONDS, context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(url.hostname, url.port or 25, timeout=SEND_SECONDS)
        with server:
            if url.scheme == "smtp+starttls":
                server.starttls(context=ssl.create_default_context())
            if url.username:
                server.login(unquote(url.username), unquote(url.password or ""))
            server.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(f"mail server {url.hostname}:{url.port}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]) from None


def send_webhook(channel: Channel, note: Note) -> None:
    url, secret = channel.url(), channel.secret()
    if not url or not secret:
        raise SendFailed(f"webhook channel {channel.name!r}: {channel.url_env} and {channel.secret_env} must both be set")
    body = json.dumps(note.payload(), separators=(",", ":"), ensure_ascii=False).encode()
    now = dt.datetime.now(dt.timezone.utc)
    try:
        signature = Webhook(secret).sign(note.id, now, body)
    except Exception as exc:  # noqa: BLE001 - a secret that is no base64 (whsec_...) key
        raise SendFailed(f"webhook channel {channel.name!r}: {channel.secret_env} is not a Standard Webhooks secret ({type(exc).__name__})") from None
    headers = {"content-type": "application/json", "webhook-id": note.id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    where = urlsplit(url)
    try:
        answer = httpx.post(url, content=body, headers=headers, timeout=SEND_SECONDS)
    except httpx.HTTPError as exc:
        raise SendFailed(f"webhook {where.scheme}://{where.netloc}{where.path}: {type(exc).__name__}") from None
    if not 200 <= answer.status_code < 300:
        raise SendFailed(f"webhook {where.scheme}://{where.netloc}{where.path} answered {answer.status_code}")
