#!/usr/bin/env python3
"""An independent check of cosign key-based image signatures, for berth's tests.

Written against the format cosign documents, not against berth's code: it talks to
a registry over the Distribution HTTP API only, and uses the `cryptography`
package for ECDSA.

    verify_cosign.py http://HOST:PORT REPO REFERENCE PUBLIC_KEY.pem

REFERENCE is a tag or a digest. Exit 0 and a JSON line naming the payload whose
signature verified; exit 1 and a JSON line of reasons otherwise.
"""

import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"


def get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def fail(reasons):
    print(json.dumps({"verified": False, "reasons": reasons}))
    sys.exit(1)


def main():
    base, repo, reference, key_path = sys.argv[1:5]
    with open(key_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        fail(["the key is not an ECDSA P-256 public key"])

    manifest = get(f"{base}/v2/{repo}/manifests/{reference}", MANIFEST_TYPES)
    if manifest is None:
        fail([f"{repo}:{reference} not found"])
    # The digest of the bytes served, not what any header claims.
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()

    sig_tag = digest.replace(":", "-") + ".sig"
    signatures = get(f"{base}/v2/{repo}/manifests/{sig_tag}", MANIFEST_TYPES)
    if signatures is None:
        fail([f"unsigned: no {sig_tag} tag"])
    reasons = []
    for layer in json.loads(signatures).get("layers", []):
        if layer.get("mediaType") != SIMPLE_SIGNING:
            reasons.append(f"{layer.get('digest')}: not a simple-signing layer")
            continue
        payload = get(f"{base}/v2/{repo}/blobs/{layer['digest']}")
        if payload is None:
            reasons.append(f"{layer['digest']}: payload missing")
            continue
        if "sha256:" + hashlib.sha256(payload).hexdigest() != layer["digest"]:
            reasons.append(f"{layer['digest']}: payload does not match its digest")
            continue
        signature = base64.b64decode(layer.get("annotations", {}).get(SIGNATURE_ANNOTATION, ""))
        try:
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            reasons.append(f"{layer['digest']}: bad signature")
            continue
        claims = json.loads(payload)["critical"]
        if claims["type"] != SIGNATURE_TYPE:
            reasons.append(f"{layer['digest']}: wrong type {claims['type']}")
            continue
        if claims["image"]["docker-manifest-digest"] != digest:
            reasons.append(f"{layer['digest']}: signs another image")
            continue
        print(
            json.dumps(
                {
                    "verified": True,
                    "digest": digest,
                    "payload": layer["digest"],
                    "docker-reference": claims["identity"]["docker-reference"],
                }
            )
        )
        return
    fail(reasons or ["no signature layers"])


if __name__ == "__main__":
    main()
