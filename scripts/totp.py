#!/usr/bin/env python3
"""Prints the current TOTP code (RFC 6238: SHA-1, 6 digits, 30 s) for a base32 secret.

Usage: scripts/totp.py SECRET_BASE32 [--next]
For the demo's platform owner (make demo prints the secret); use a real authenticator app otherwise.
"""
import base64
import hashlib
import hmac
import struct
import sys
import time


def code(secret: str, step: int) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    step = int(time.time()) // 30 + (1 if "--next" in sys.argv[2:] else 0)
    print(code(sys.argv[1], step))
