"""The network: the one HTTP client, its transports, the address guard and URL rules.

Only this package imports httpx, httpcore, h11 or h2 (tests/test_layout.py).
"""
