# Test target for ../rules/secrets.yaml (semgrep --test annotations). Never executed.
# The values below are fake test fixtures.
import os


class Config:
    pass


def connect(**kwargs):
    return kwargs


# ruleid: secure-iot.hardcoded-secret
password = "hunter2-correct-horse-battery"
# ruleid: secure-iot.hardcoded-secret
DB_PASSWD = 'S3cr3t!pass'
# ruleid: secure-iot.hardcoded-secret
GITHUB_TOKEN = "ghp_0123456789abcdefABCDEF0123456789abcd"
# ruleid: secure-iot.hardcoded-secret
api_key: str = "AKIAEXAMPLEKEY123456"
# ruleid: secure-iot.hardcoded-secret
ClientSecret = "a-very-long-client-secret"
# ruleid: secure-iot.hardcoded-secret
signing_private_key = "base64:MC4CAQAwBQYDK2VwBCIEI"
cfg = Config()
# ruleid: secure-iot.hardcoded-secret
cfg.apikey = "0123456789abcdef"
# ruleid: secure-iot.hardcoded-secret
connect(host="db", password="hunter2-correct-horse")
# ruleid: secure-iot.hardcoded-secret
settings = {"auth_token": "tok_live_0123456789"}

# ok: secure-iot.hardcoded-secret
password = "short"
# ok: secure-iot.hardcoded-secret
password = os.environ["DB_PASSWORD"]
# ok: secure-iot.hardcoded-secret
TOKEN_ENV = "GITHUB_TOKEN"
# ok: secure-iot.hardcoded-secret
password = ""
# ok: secure-iot.hardcoded-secret
secret = "${VAULT_SECRET}"
# ok: secure-iot.hardcoded-secret
api_key = "<your-api-key>"
# ok: secure-iot.hardcoded-secret
username = "administrator-account"
# ok: secure-iot.hardcoded-secret
password_hint = 12345678
# ok: secure-iot.hardcoded-secret
connect(host="db.example.internal", user="administrator")

# ruleid: secure-iot.hardcoded-private-key
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEfake\n-----END RSA PRIVATE KEY-----\n"
# ruleid: secure-iot.hardcoded-private-key
COSIGN = """-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCJ9fQ==
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"""
# ruleid: secure-iot.hardcoded-private-key
EC = "-----BEGIN EC PRIVATE KEY-----"
# ruleid: secure-iot.hardcoded-private-key
PKCS8 = "-----BEGIN PRIVATE KEY-----"
# ok: secure-iot.hardcoded-private-key
CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
# ok: secure-iot.hardcoded-private-key
PUB = "-----BEGIN PUBLIC KEY-----\nMFkwEwfake\n-----END PUBLIC KEY-----\n"
# ok: secure-iot.hardcoded-secret
password_var = "PASSWORD"
# ok: secure-iot.hardcoded-secret
token_placeholder = "**********"
