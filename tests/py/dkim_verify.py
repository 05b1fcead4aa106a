"""Verifies the DKIM signature of a raw email with dkimpy, answering the DNS lookup itself.

    dkim_verify.py MESSAGE_FILE SELECTOR DOMAIN PUBLIC_KEY_B64

Exits 0 when the signature verifies, 1 (with dkimpy's log) when it does not.
"""

import logging
import sys

import dkim


def main():
    path, selector, domain, public_key = sys.argv[1:5]
    with open(path, "rb") as f:
        message = f.read()
    record = f"v=DKIM1; k=rsa; p={public_key}".encode()
    wanted = f"{selector}._domainkey.{domain}."

    def dns(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return record if name.rstrip(".") + "." == wanted else None

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    ok = dkim.verify(message, logger=logging.getLogger("dkim"), dnsfunc=dns)
    print("dkim: pass" if ok else "dkim: fail")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
