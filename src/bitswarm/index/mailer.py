"""Mail from the site (the e-mail gate's confirmation links), through the configured SMTP
server with the standard library's client, in a thread. One message per call; a server
that refuses or cannot be reached is a ``UsageError`` for the visitor's request alone."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

from bitswarm.errors import UsageError
from bitswarm.index.config import IndexConfig

SMTP_TIMEOUT_S = 20.0


async def send_mail(config: IndexConfig, to: str, subject: str, body: str) -> None:
    if not config.smtp_host or not config.smtp_from:
        raise UsageError("this site sends no mail (no smtp_host and smtp_from are set)")
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    await asyncio.to_thread(_send, config, message)


def _send(config: IndexConfig, message: EmailMessage) -> None:
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=SMTP_TIMEOUT_S) as client:
            if config.smtp_starttls:
                client.starttls(context=ssl.create_default_context())
            if config.smtp_user:
                client.login(config.smtp_user, config.smtp_password)
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        raise UsageError(f"the mail could not be sent: {error}") from None
