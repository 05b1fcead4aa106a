"""A real SMTP server (aiosmtpd) for Waymark's delivery tests.

    smtp_sink.py PORT OUTDIR [--starttls-auth]

Listens on 127.0.0.1:PORT (0 picks a free port) and prints `ready PORT` once it accepts
connections. Every accepted message is written to OUTDIR as `accepted-NNNN.json`:
{"mail_from": ..., "rcpt_tos": [...], "data": "<the raw message>"}. Files are written atomically
(temporary name, then rename) before the server answers 250, so a client that saw 250 finds the
file.

The recipient's local part chooses the behaviour, so that one sink serves every scenario:

- `reject...@`: RCPT TO is answered `550 5.1.1 mailbox unavailable` (permanent).
- `tempfailN...@` (N a number): the first N DATA transactions for that recipient are answered
  `451 4.3.0 try later` (temporary) after the message was received; each such copy is written
  as `rejected-NNNN.json`, so the test can compare the copies of every attempt.
- `rcptfailN...@`: the first N RCPT TO for that recipient are answered `451 4.3.0 try later`.
- `spam...@`: DATA is answered `554 5.7.1 message rejected as spam` (permanent, but not a
  missing mailbox) after the message was received.
- anything else: accepted.

Every RCPT TO is also appended to OUTDIR/rcpt.log (one address per line), so the test can count
delivery attempts, including those that never reached DATA.

With `--starttls-auth` the sink offers STARTTLS (a self-signed certificate for `sink.test`) and
AUTH PLAIN/LOGIN, also before STARTTLS (as some servers do), accepts any credentials and appends
one line per AUTH to OUTDIR/auth.log: `MECHANISM LOGIN tls` or `MECHANISM LOGIN plaintext`.

The sink exits when its standard input is closed (the test process ended), so it never outlives
the test.
"""

import asyncio
import itertools
import json
import os
import re
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult

TEMPFAIL = re.compile(r"^tempfail(\d+)", re.IGNORECASE)
RCPTFAIL = re.compile(r"^rcptfail(\d+)", re.IGNORECASE)

# Self-signed, for `sink.test`, valid until 2126; only used to offer STARTTLS.
CERT = """-----BEGIN CERTIFICATE-----
MIIBfjCCASWgAwIBAgIUGIG6ShpiPqJHelCcU8xDZsxDUVkwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJc2luay50ZXN0MCAXDTI2MTEyMzEzMjAwMFoYDzIxMjYxMDMw
MTMyMDAwWjAUMRIwEAYDVQQDDAlzaW5rLnRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARiNMXxkI+xICBzoohWiSRHa1QlaCwy4fOvp/5DCopwaMjhqAYBWad8
GdzIl0mOA9ebWS4wKKNpLyLFJ0ydiM4Ho1MwUTAdBgNVHQ4EFgQUl0tK7elNSId1
KNHyxghteWAOpd4wHwYDVR0jBBgwFoAUl0tK7elNSId1KNHyxghteWAOpd4wDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBl4+bMDheWLNTlZSzvByyO
UhyjL0LE94FwIYDQQ7m0TAIgNc8jWKnvsH2VWqQkSncEmK4VrJmsQUzohGu3AFYU
fGc=
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCtalbrFNJaTQy/4I
3gfYVl7y+eFGKStpTp8RGXO7xkGhRANCAARiNMXxkI+xICBzoohWiSRHa1QlaCwy
4fOvp/5DCopwaMjhqAYBWad8GdzIl0mOA9ebWS4wKKNpLyLFJ0ydiM4H
-----END PRIVATE KEY-----
"""


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.counter = itertools.count(1)
        self.tempfailed = {}
        self.rcptfailed = {}

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"") or b""
        if isinstance(login, bytes):
            login = login.decode("utf-8", errors="replace")
        state = "tls" if session.ssl is not None else "plaintext"
        with open(os.path.join(self.outdir, "auth.log"), "a", encoding="utf-8") as f:
            f.write(f"{mechanism} {login} {state}\n")
        return AuthResult(success=True)

    def _write(self, prefix, envelope):
        n = next(self.counter)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf-8", errors="replace"),
        }
        final = os.path.join(self.outdir, f"{prefix}-{n:04d}.json")
        tmp = final + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(os.path.join(self.outdir, "rcpt.log"), "a", encoding="utf-8") as f:
            f.write(address + "\n")
        local = address.split("@", 1)[0]
        if local.lower().startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        m = RCPTFAIL.match(local)
        if m:
            seen = self.rcptfailed.get(address.lower(), 0)
            if seen < int(m.group(1)):
                self.rcptfailed[address.lower()] = seen + 1
                return "451 4.3.0 try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@", 1)[0].lower().startswith("spam") for r in envelope.rcpt_tos):
            return "554 5.7.1 message rejected as spam"
        for rcpt in envelope.rcpt_tos:
            m = TEMPFAIL.match(rcpt.split("@", 1)[0])
            if m:
                seen = self.tempfailed.get(rcpt.lower(), 0)
                if seen < int(m.group(1)):
                    self.tempfailed[rcpt.lower()] = seen + 1
                    self._write("rejected", envelope)
                    return "451 4.3.0 try later"
        self._write("accepted", envelope)
        return "250 Message accepted for delivery"


def watch_stdin():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


async def main():
    args = sys.argv[1:]
    starttls_auth = "--starttls-auth" in args
    args = [a for a in args if a != "--starttls-auth"]
    if len(args) != 2:
        print("usage: smtp_sink.py PORT OUTDIR [--starttls-auth]", file=sys.stderr)
        sys.exit(2)
    port = int(args[0])
    outdir = args[1]
    os.makedirs(outdir, exist_ok=True)
    handler = Sink(outdir)
    options = {"hostname": "sink.test", "ident": "waymark-test-sink"}
    if starttls_auth:
        cert = os.path.join(outdir, "cert.pem")
        key = os.path.join(outdir, "key.pem")
        with open(cert, "w") as f:
            f.write(CERT)
        with open(key, "w") as f:
            f.write(KEY)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options.update(
            tls_context=context,
            require_starttls=False,
            auth_require_tls=False,
            authenticator=handler.authenticate,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **options),
        host="127.0.0.1",
        port=port,
    )
    actual = server.sockets[0].getsockname()[1]
    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"ready {actual}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
