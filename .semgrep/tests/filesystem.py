# Test target for ../rules/filesystem.yaml (semgrep --test annotations). Never executed.
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path
from tarfile import TarFile


def unpack(archive_path, dest, member):
    with tarfile.open(archive_path, "r:gz") as archive:
        # ruleid: secure-iot.tarfile-extract-no-filter
        archive.extractall(dest)
        # ruleid: secure-iot.tarfile-extract-no-filter
        archive.extract(member, path=dest)
        # ok: secure-iot.tarfile-extract-no-filter
        archive.extractall(dest, filter="data")
        # ok: secure-iot.tarfile-extract-no-filter
        archive.extract(member, path=dest, filter="data")
    tar = tarfile.open(archive_path)
    # ruleid: secure-iot.tarfile-extract-no-filter
    tar.extractall()
    # ok: secure-iot.tarfile-extract-no-filter
    tar.extractall(path=dest, filter=tarfile.data_filter)
    # ruleid: secure-iot.tarfile-extract-no-filter
    tarfile.open(archive_path).extractall(dest)
    with zipfile.ZipFile(archive_path) as zf:
        # ok: secure-iot.tarfile-extract-no-filter
        zf.extractall(dest)


def unpack_typed(tf: TarFile, dest):
    # ruleid: secure-iot.tarfile-extract-no-filter
    tf.extractall(dest)


def temp_files():
    # ruleid: secure-iot.tempfile-mktemp
    name = tempfile.mktemp()
    # ruleid: secure-iot.tempfile-mktemp
    other = tempfile.mktemp(suffix=".sarif")
    # ok: secure-iot.tempfile-mktemp
    fd, path = tempfile.mkstemp()
    # ok: secure-iot.tempfile-mktemp
    with tempfile.NamedTemporaryFile() as fh:
        pass
    return name, other, fd, path, fh


def permissions(path, tool: Path):
    # ruleid: secure-iot.chmod-world-writable
    os.chmod(path, 0o777)
    # ruleid: secure-iot.chmod-world-writable
    os.chmod(path, 0o666)
    # ruleid: secure-iot.chmod-world-writable
    tool.chmod(0o777)
    # ruleid: secure-iot.chmod-world-writable
    os.makedirs(path, mode=0o777, exist_ok=True)
    # ok: secure-iot.chmod-world-writable
    os.chmod(path, 0o755)
    # ok: secure-iot.chmod-world-writable
    os.chmod(path, 0o600)
    # ok: secure-iot.chmod-world-writable
    tool.chmod(0o755)
