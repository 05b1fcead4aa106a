#!/usr/bin/env python3
"""Drives a Waymark server with the official Segment Python client.

Usage: segment_client_check.py HOST WRITE_KEY

Sends identify, track, page, screen, group and alias calls for a few users, first through the
module-level client in its default (batching, background-thread) mode and flushed, then through
a client in sync mode. Exits 0 when the server accepted every call; prints each error and exits
1 otherwise. `tests/segment_client.rs` runs this script and then checks, through the management
API, that everything arrived.
"""

import sys

try:
    import segment.analytics as analytics
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(
        f"cannot import segment.analytics ({e}); "
        "run `pip install -r tests/py/requirements.txt`",
        file=sys.stderr,
    )
    sys.exit(3)

errors = []


def on_error(error, batch):
    errors.append(f"{error} (batch of {len(batch)} call(s))")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    host, write_key = sys.argv[1], sys.argv[2]

    # 1. The module-level client, as most applications use it: calls are queued, batched and
    #    uploaded by a consumer thread; flush() waits until the queue is empty.
    analytics.write_key = write_key
    analytics.host = host
    analytics.on_error = on_error
    analytics.max_retries = 1
    analytics.timeout = 30

    analytics.identify(
        "py-alice",
        {
            "email": "Alice.Smith@Example.COM",
            "first_name": "Alice",
            "plan": "pro",
            "timezone": "Europe/Paris",
        },
        message_id="py-alice-identify",
    )
    analytics.track(
        "py-alice",
        "Order Completed",
        {"order_id": "o-1001", "total": 42.5, "currency": "EUR"},
        message_id="py-alice-order",
    )
    analytics.page(
        "py-alice",
        category="Docs",
        name="Pricing",
        properties={"url": "https://acme.example/pricing"},
        message_id="py-alice-page",
    )
    analytics.screen(
        "py-alice",
        category="App",
        name="Home",
        properties={"build": 311},
        message_id="py-alice-screen",
    )
    analytics.group(
        "py-alice",
        "acme-inc",
        {"name": "Acme Inc", "employees": 42},
        message_id="py-alice-group",
    )

    # An anonymous visitor who later signs up as py-bob.
    analytics.track(
        anonymous_id="anon-py-bob",
        event="Product Viewed",
        properties={"sku": "SKU-7"},
        message_id="py-anon-viewed",
    )
    analytics.page(
        anonymous_id="anon-py-bob",
        name="Landing",
        properties={"url": "https://acme.example/"},
        message_id="py-anon-page",
    )
    analytics.flush()

    # 2. A client in sync mode: each call is one blocking request; errors raise.
    sync = analytics.Client(
        write_key,
        host=host,
        sync_mode=True,
        on_error=on_error,
        max_retries=1,
        timeout=30,
    )
    calls = [
        lambda: sync.alias("anon-py-bob", "py-bob", message_id="py-bob-alias"),
        lambda: sync.identify(
            "py-bob",
            {"email": "bob@example.org", "first_name": "Bob"},
            message_id="py-bob-identify",
        ),
        lambda: sync.track(
            "py-bob",
            "Signed Up",
            {"source": "python"},
            message_id="py-bob-signed-up",
        ),
        # A known user renamed: the old id's history moves to the new one.
        lambda: sync.identify(
            "py-carol-old",
            {"email": "carol@example.net", "city": "Lyon"},
            message_id="py-carol-identify",
        ),
        lambda: sync.track(
            "py-carol-old", "Trial Started", {}, message_id="py-carol-trial"
        ),
        lambda: sync.alias("py-carol-old", "py-carol", message_id="py-carol-alias"),
    ]
    for call in calls:
        try:
            ok, msg = call()
            if not ok:
                errors.append(f"the client did not queue {msg.get('type')}")
        except Exception as e:  # noqa: BLE001 - any failure is a failed check
            errors.append(f"{type(e).__name__}: {e}")

    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"segment-analytics-python {analytics.VERSION}: all calls accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
