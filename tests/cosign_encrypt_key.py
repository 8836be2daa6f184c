#!/usr/bin/env python3
"""Writes a private key in cosign's encrypted format, independently of berth.

    cosign_encrypt_key.py KEY.pem PASSWORD OUT.key

The format (cosign's `ENCRYPTED SIGSTORE PRIVATE KEY`): a JSON document holding the
PKCS#8 DER of the key sealed with NaCl secretbox (XSalsa20-Poly1305) under a key
that scrypt (N=32768, r=8, p=1, as cosign) derives from the password. scrypt comes
from hashlib, Poly1305 from `cryptography`; XSalsa20 is written out below, since
neither library has it.
"""

import base64
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.poly1305 import Poly1305

MASK = 0xFFFFFFFF
SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def rotl(v, c):
    return ((v << c) & MASK) | (v >> (32 - c))


def double_rounds(x):
    def quarter(a, b, c, d):
        x[b] ^= rotl((x[a] + x[d]) & MASK, 7)
        x[c] ^= rotl((x[b] + x[a]) & MASK, 9)
        x[d] ^= rotl((x[c] + x[b]) & MASK, 13)
        x[a] ^= rotl((x[d] + x[c]) & MASK, 18)

    for _ in range(10):
        quarter(0, 4, 8, 12)
        quarter(5, 9, 13, 1)
        quarter(10, 14, 2, 6)
        quarter(15, 3, 7, 11)
        quarter(0, 1, 2, 3)
        quarter(5, 6, 7, 4)
        quarter(10, 11, 8, 9)
        quarter(15, 12, 13, 14)


def state(key, sixteen):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [SIGMA[0], *k[:4], SIGMA[1], *n, SIGMA[2], *k[4:], SIGMA[3]]


def hsalsa20(key, sixteen):
    x = state(key, sixteen)
    double_rounds(x)
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def salsa20_stream(key, nonce8, length):
    out = b""
    counter = 0
    while len(out) < length:
        initial = state(key, nonce8 + struct.pack("<Q", counter))
        x = list(initial)
        double_rounds(x)
        out += struct.pack("<16I", *((a + b) & MASK for a, b in zip(x, initial)))
        counter += 1
    return out[:length]


def secretbox_seal(key, nonce, message):
    stream = salsa20_stream(hsalsa20(key, nonce[:16]), nonce[16:], 32 + len(message))
    ciphertext = bytes(m ^ s for m, s in zip(message, stream[32:]))
    return Poly1305.generate_tag(stream[:32], ciphertext) + ciphertext


def main():
    source, password, out = sys.argv[1:4]
    with open(source, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    n, r, p = 32768, 8, 1
    box_key = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32
    )
    b64 = lambda b: base64.b64encode(b).decode()
    document = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(secretbox_seal(box_key, nonce, pkcs8)),
    }
    body = base64.encodebytes(json.dumps(document).encode()).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    with open(out, "w") as f:
        f.write("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
        f.write("\n".join(lines) + "\n")
        f.write("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")


if __name__ == "__main__":
    main()
