"""An image is named by digest: tags are refused where a reference enters, and cosign's tags have one home."""

from __future__ import annotations

import pytest

from tasks.core.errors import InputError
from tasks.core.image_ref import ImageRef

HEX = "0123456789abcdef" * 4
LOCAL = f"127.0.0.1:5000/secure-iot-app@sha256:{HEX}"


def test_a_reference_by_digest_round_trips() -> None:
    image = ImageRef.parse(LOCAL)
    assert str(image) == LOCAL
    assert (image.repository, image.digest, image.hex) == ("127.0.0.1:5000/secure-iot-app", f"sha256:{HEX}", HEX)
    assert (image.registry, image.path) == ("127.0.0.1:5000", "secure-iot-app")
    assert ImageRef.parse(str(image)) == image


@pytest.mark.parametrize(
    ("text", "registry", "path"),
    [
        (f"docker.io/library/debian@sha256:{HEX}", "docker.io", "library/debian"),
        (f"localhost/app@sha256:{HEX}", "localhost", "app"),
        (f"library/debian@sha256:{HEX}", "", "library/debian"),  # a Docker Hub short name: no registry
        (f"debian@sha256:{HEX}", "", "debian"),
    ],
)
def test_registry_and_path(text: str, registry: str, path: str) -> None:
    image = ImageRef.parse(text)
    assert (image.registry, image.path, str(image)) == (registry, path, text)


@pytest.mark.parametrize(
    "text",
    [
        "docker.io/library/python:3.11-slim",  # a tag
        "127.0.0.1:5000/app",  # nothing
        f"127.0.0.1:5000/app@sha256:{HEX[:-1]}",  # a short digest
        f"127.0.0.1:5000/app@sha256:{HEX.upper()}",  # not lowercase hex
        f"127.0.0.1:5000/app@sha512:{HEX}{HEX}",  # another algorithm
        f"@sha256:{HEX}",  # no repository
        f"127.0.0.1:5000/app@sha256:{HEX} ",  # trailing text
        f"-app@sha256:{HEX}",  # read as a flag by the tool it is handed to
        f"--insecure/app@sha256:{HEX}",
        f"127.0.0.1:5000/App@sha256:{HEX}",  # the grammar's paths are lowercase
        f"127.0.0.1:5000/a\x1b[2Jpp@sha256:{HEX}",  # a control character (a terminal escape)
        f"127.0.0.1:5000/app\x00@sha256:{HEX}",
        f"127.0.0.1:5000/app@evil@sha256:{HEX}",  # two @
        f"127.0.0.1:5000//app@sha256:{HEX}",  # an empty path component
        "",
    ],
)
def test_anything_but_a_digest_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(InputError, match="must be given by digest") as refused:
        ImageRef.parse(text, what="--image")
    assert str(refused.value).startswith(f"--image {text}:") and "\n" not in str(refused.value)
    assert ImageRef.maybe(text) is None


def test_cosign_signature_and_attestation_tags() -> None:
    image = ImageRef.parse(LOCAL)
    assert image.signature_tag == f"sha256-{HEX}.sig"
    assert image.attestation_tag == f"sha256-{HEX}.att"
    assert image.tagged(image.signature_tag) == f"127.0.0.1:5000/secure-iot-app:sha256-{HEX}.sig"


def test_a_tag_beside_the_digest_stays_in_the_repository_as_written() -> None:
    text = f"docker.io/library/debian:bookworm@sha256:{HEX}"
    image = ImageRef.parse(text)
    assert (image.repository, str(image)) == ("docker.io/library/debian:bookworm", text)
