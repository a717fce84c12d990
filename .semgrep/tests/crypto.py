# Test target for ../rules/crypto.yaml (semgrep --test annotations). Never executed.
import hashlib


def digests(data):
    # ruleid: secure-iot.weak-hash
    hashlib.md5(data)
    # ruleid: secure-iot.weak-hash
    hashlib.sha1(data).hexdigest()
    # ruleid: secure-iot.weak-hash
    hashlib.new("md5", data)
    # ruleid: secure-iot.weak-hash
    hashlib.new("SHA1")
    # ok: secure-iot.weak-hash
    hashlib.md5(data, usedforsecurity=False)
    # ok: secure-iot.weak-hash
    hashlib.new("sha1", data, usedforsecurity=False)
    # ok: secure-iot.weak-hash
    hashlib.sha256(data)
    # ok: secure-iot.weak-hash
    hashlib.new("sha256", data)
