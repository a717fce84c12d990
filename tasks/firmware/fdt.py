"""A minimal flattened device tree reader/writer (a FIT and a control DTB are both one).

Used to read what U-Boot measures (the required key's modulus, the FIT's totalsize) and, in the
tamper cases, to change a signed FIT the way an attacker would. It round-trips mkimage's output
byte for byte, including the free space mkimage leaves after the strings block (the tamper
builder checks that before it changes anything). Editing a build's own trees is fdtput's job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = 0xD00DFEED
BEGIN_NODE, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9


@dataclass
class Node:
    name: str
    props: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def child(self, name: str) -> Node:
        for c in self.children:
            if c.name == name:
                return c
        raise KeyError(name)

    def find(self, path: str) -> Node:
        node = self
        for part in filter(None, path.split("/")):
            node = node.child(part)
        return node

    def get(self, name: str) -> bytes:
        for key, value in self.props:
            if key == name:
                return value
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.props)

    def delete(self, name: str) -> None:
        self.props = [(key, value) for key, value in self.props if key != name]

    def set(self, name: str, value: bytes) -> None:
        for i, (key, _) in enumerate(self.props):
            if key == name:
                self.props[i] = (name, value)
                return
        self.props.append((name, value))


@dataclass
class Tree:
    root: Node
    rsvmap: bytes
    strings: bytes
    boot_cpuid: int
    slack: int = 0  # free space after the strings block that totalsize includes (mkimage leaves some)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def totalsize(blob: bytes) -> int:
    magic, size = struct.unpack_from(">II", blob, 0)
    if magic != MAGIC:
        raise ValueError("not a flattened device tree (bad magic)")
    return int(size)


def parse(blob: bytes) -> Tree:
    (magic, total, off_struct, off_strings, off_rsv, _ver, _last, cpuid, size_strings, size_struct) = (
        struct.unpack_from(">10I", blob, 0)
    )
    if magic != MAGIC:
        raise ValueError("not a flattened device tree (bad magic)")
    strings = blob[off_strings : off_strings + size_strings]
    rsvmap = blob[off_rsv:off_struct]
    pos, end = off_struct, off_struct + size_struct
    stack: list[Node] = []
    root: Node | None = None
    while pos < end:
        (token,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        if token == BEGIN_NODE:
            nul = blob.index(b"\0", pos)
            node = Node(blob[pos:nul].decode())
            pos = _pad4(nul + 1)
            if stack:
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
        elif token == END_NODE:
            stack.pop()
        elif token == PROP:
            length, nameoff = struct.unpack_from(">II", blob, pos)
            pos += 8
            name = strings[nameoff : strings.index(b"\0", nameoff)].decode()
            stack[-1].props.append((name, blob[pos : pos + length]))
            pos = _pad4(pos + length)
        elif token == NOP:
            continue
        elif token == END:
            break
        else:
            raise ValueError(f"bad FDT token {token:#x} at {pos - 4}")
    if root is None:
        raise ValueError("empty device tree")
    return Tree(root, rsvmap, strings, cpuid, max(0, total - (off_strings + size_strings)))


def serialize(tree: Tree) -> bytes:
    """The tree as a blob with mkimage's/dtc's layout: header, rsvmap, struct, strings (order kept)."""
    strings = bytearray(tree.strings)
    offsets: dict[str, int] = {}
    pos = 0
    while pos < len(strings):
        nul = strings.index(b"\0", pos)
        offsets.setdefault(strings[pos:nul].decode(), pos)
        pos = nul + 1
    out = bytearray()

    def emit(node: Node) -> None:
        name = node.name.encode() + b"\0"
        out.extend(struct.pack(">I", BEGIN_NODE) + name + b"\0" * (_pad4(len(name)) - len(name)))
        for key, value in node.props:
            if key not in offsets:
                offsets[key] = len(strings)
                strings.extend(key.encode() + b"\0")
            out.extend(struct.pack(">III", PROP, len(value), offsets[key]) + value)
            out.extend(b"\0" * (_pad4(len(value)) - len(value)))
        for child in node.children:
            emit(child)
        out.extend(struct.pack(">I", END_NODE))

    emit(tree.root)
    out.extend(struct.pack(">I", END))
    off_rsv = 40
    off_struct = off_rsv + len(tree.rsvmap)
    off_strings = off_struct + len(out)
    total = off_strings + len(strings) + tree.slack
    header = struct.pack(
        ">10I", MAGIC, total, off_struct, off_strings, off_rsv, 17, 16, tree.boot_cpuid, len(strings), len(out)
    )
    return header + tree.rsvmap + bytes(out) + bytes(strings) + b"\0" * tree.slack


def compatibles(node: Node) -> list[bytes]:
    """Every ``compatible`` string of ``node`` and its descendants."""
    found = [c for key, value in node.props if key == "compatible" for c in value.split(b"\0") if c]
    return found + [c for child in node.children for c in compatibles(child)]


def cell(node: Node, name: str) -> int:
    """A one-cell (u32) property."""
    value = node.get(name)
    if len(value) != 4:
        raise ValueError(f"{node.name}/{name}: expected one 32-bit cell, got {len(value)} bytes")
    return int.from_bytes(value, "big")


def text(node: Node, name: str) -> str:
    """A string property (NUL-terminated)."""
    return node.get(name).rstrip(b"\0").decode()
