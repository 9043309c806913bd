#!/usr/bin/env python3
"""A real SMTP server for the email sink tests: aiosmtpd (Debian's
python3-aiosmtpd) on 127.0.0.1 with STARTTLS or implicit TLS and AUTH.

Every accepted mail is parsed with Python's own email package (an
independent MIME parser) and written as one JSON file in --out, so the
tests check what a mail client would see. Prints "ready" once listening.
"""
import argparse
import base64
import email
import email.policy
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["starttls", "implicit"], required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--user", required=True)
parser.add_argument("--password", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()


class Handler:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        attachments = []
        for part in message.iter_attachments():
            content = part.get_content()
            if isinstance(content, str):
                content = content.encode()
            attachments.append({
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "data": base64.b64encode(content).decode(),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["from"]),
            "to": str(message["to"]),
            "subject": str(message["subject"]),
            "body": body.get_content() if body is not None else None,
            "attachments": attachments,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        with self.lock:
            self.count += 1
            path = os.path.join(args.out, f"{self.count:04d}.json")
        # Written whole, then renamed: a reader never sees half a file.
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword):
        if auth_data.login.decode() == args.user and auth_data.password.decode() == args.password:
            return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(args.cert, args.key)
options = dict(
    hostname="127.0.0.1",
    port=args.port,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=True,
    # The controller checks readiness by connecting to itself.
    ready_timeout=10,
)
if args.mode == "starttls":
    controller = Controller(Handler(), tls_context=context, require_starttls=True, **options)
else:
    # aiosmtpd 1.4 does not count an implicit-TLS connection as TLS for
    # auth_require_tls and would hide AUTH; the whole connection is TLS here.
    options["auth_require_tls"] = False
    controller = Controller(Handler(), ssl_context=context, **options)
controller.start()
print("ready", flush=True)
threading.Event().wait()
