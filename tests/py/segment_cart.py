#!/usr/bin/env python3
"""Sends a cart as Segment's e-commerce spec describes it, with the official Segment client.

Usage: segment_cart.py HOST WRITE_KEY

One shopper (`py-shopper`, dora@example.org) adds two products to cart `py-cart-1`: one
`Product Added` call per product, its properties flat (product_id, sku, category, name, brand,
variant, price, quantity, coupon, position, url, image_url), as in the spec's own example.
Exits 0 when the server accepted every call. `tests/segment_client.rs` then checks that the
abandoned-cart reminder lists both products.
"""

import sys

import segment.analytics as analytics

errors = []


def on_error(error, batch):
    errors.append(f"{error} (batch of {len(batch)} call(s))")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    analytics.write_key = sys.argv[2]
    analytics.host = sys.argv[1]
    analytics.on_error = on_error
    analytics.max_retries = 1
    analytics.timeout = 30

    analytics.identify("py-shopper", {"email": "dora@example.org", "first_name": "Dora"})
    analytics.track(
        "py-shopper",
        "Product Added",
        {
            "cart_id": "py-cart-1",
            "product_id": "507f1f77bcf86cd799439011",
            "sku": "G-32",
            "category": "Games",
            "name": "Monopoly: 3rd Edition",
            "brand": "Hasbro",
            "variant": "200 pieces",
            "price": 18.99,
            "quantity": 1,
            "coupon": "MAYDEALS",
            "position": 3,
            "url": "https://www.example.com/product/path",
            "image_url": "https://www.example.com/product/path.jpg",
        },
    )
    analytics.track(
        "py-shopper",
        "Product Added",
        {
            "cart_id": "py-cart-1",
            "product_id": "505bd76785ebb509fc183733",
            "sku": "46493-32",
            "category": "Games",
            "name": "Uno Card Game",
            "brand": "Mattel",
            "price": 3,
            "quantity": 2,
            "position": 4,
        },
    )
    analytics.flush()
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        return 1
    print("all calls accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
