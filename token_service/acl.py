"""``python -m token_service.acl [--prefix tokens]``: print the Redis ACL file.

The users, and why each may do what it may, are in :mod:`token_service.redis.acl`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from token_service.redis import acl

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ACL file for a key prefix."""
    parser = argparse.ArgumentParser(
        prog="python -m token_service.acl",
        description=acl.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prefix", default="tokens", help="the key prefix (TOKENS_KEY_PREFIX)")
    parser.add_argument(
        "--publisher",
        action="append",
        help="a registered publisher's name (repeat; default: %(default)s)",
    )
    options = parser.parse_args(argv)
    publishers = options.publisher or acl.DEFAULT_PUBLISHERS
    sys.stdout.write(acl.render(options.prefix, publishers=publishers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
