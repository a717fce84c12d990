# Test target for ../rules/network-tls.yaml (semgrep --test annotations). Never executed.
import socket
import ssl
import urllib.request

import httpx
import requests


def fetch(url, session, kwargs):
    # ruleid: secure-iot.tls-verify-disabled, secure-iot.requests-no-timeout
    requests.get(url, verify=False)
    # ruleid: secure-iot.tls-verify-disabled
    requests.post(url, json={}, verify=False, timeout=10)
    # ruleid: secure-iot.tls-verify-disabled
    httpx.get(url, verify=False)
    # ruleid: secure-iot.tls-verify-disabled
    httpx.Client(verify=False)
    # ruleid: secure-iot.tls-verify-disabled
    session.verify = False
    # ok: secure-iot.tls-verify-disabled
    requests.get(url, verify="/etc/ssl/ca.pem", timeout=10)
    # ok: secure-iot.tls-verify-disabled
    httpx.get(url, verify=True)

    # ruleid: secure-iot.requests-no-timeout
    requests.get(url)
    # ruleid: secure-iot.requests-no-timeout
    requests.request("GET", url, headers={})
    # ok: secure-iot.requests-no-timeout
    requests.get(url, timeout=10)
    # ok: secure-iot.requests-no-timeout
    requests.post(url, data=b"", timeout=(3.05, 27))
    # ok: secure-iot.requests-no-timeout
    requests.get(url, **kwargs)

    # ruleid: secure-iot.httpx-timeout-none
    httpx.get(url, timeout=None)
    # ruleid: secure-iot.httpx-timeout-none
    httpx.Client(timeout=None)
    # ruleid: secure-iot.httpx-timeout-none
    httpx.Timeout(None)
    # ok: secure-iot.httpx-timeout-none
    httpx.get(url)
    # ok: secure-iot.httpx-timeout-none
    httpx.Client(timeout=10.0)


def contexts(ctx):
    # ruleid: secure-iot.ssl-unverified-context
    c = ssl._create_unverified_context()
    # ruleid: secure-iot.ssl-unverified-context
    ssl._create_default_https_context = ssl._create_unverified_context
    # ruleid: secure-iot.ssl-unverified-context
    ctx.verify_mode = ssl.CERT_NONE
    # ruleid: secure-iot.ssl-unverified-context
    ctx.check_hostname = False
    # ok: secure-iot.ssl-unverified-context
    c = ssl.create_default_context()
    return c


def open_urls(url):
    # ruleid: secure-iot.urlopen-non-literal-url
    urllib.request.urlopen(url)
    # ruleid: secure-iot.urlopen-non-literal-url
    urllib.request.urlopen(f"https://{url}/v2/", timeout=10)
    # ruleid: secure-iot.urlopen-non-literal-url
    urllib.request.urlretrieve(url, "/tmp/x")
    # ok: secure-iot.urlopen-non-literal-url
    urllib.request.urlopen("https://rekor.sigstore.dev/api/v1/log", timeout=10)


def serve(app, sock: socket.socket):
    # ruleid: secure-iot.bind-all-interfaces
    sock.bind(("0.0.0.0", 8080))
    # ruleid: secure-iot.bind-all-interfaces
    app.run(host="0.0.0.0", port=8080)
    # ok: secure-iot.bind-all-interfaces
    sock.bind(("127.0.0.1", 8080))
    # ok: secure-iot.bind-all-interfaces
    app.run(host="127.0.0.1", port=8080)
