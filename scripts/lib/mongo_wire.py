#!/usr/bin/env python3
"""Minimal MongoDB wire-protocol client (OP_MSG + a small BSON codec), Python stdlib only.

Enough for the operator scripts to count what the processor stored in FerretDB without pymongo
or mongosh:

  mongo_wire.py count URI DB [COLLECTION...]     documents per collection and their sum
  mongo_wire.py ids   URI DB [COLLECTION...]     every _id, one per line (stdout)
  mongo_wire.py drop  URI DB                     drops the database
  mongo_wire.py ping  URI                        exit 0 when the server answers

COLLECTION defaults to gpu_metrics and token_usage. URI: mongodb://HOST:PORT[/...] without
credentials or options (the local test services). Exit 1 on any error, with a message on stderr.
"""
import socket
import struct
import sys
import urllib.parse

DEFAULT_COLLECTIONS = ("gpu_metrics", "token_usage")
OP_MSG = 2013


class Int64(int):
    """Marks an int to be encoded as BSON int64."""


def _cstring(s):
    b = s.encode()
    if b"\x00" in b:
        raise ValueError("NUL in key")
    return b + b"\x00"


def encode(doc):
    out = bytearray()
    for key, value in doc.items():
        name = _cstring(key)
        if isinstance(value, bool):
            out += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, Int64):
            out += b"\x12" + name + struct.pack("<q", value)
        elif isinstance(value, int):
            if -(2**31) <= value < 2**31:
                out += b"\x10" + name + struct.pack("<i", value)
            else:
                out += b"\x12" + name + struct.pack("<q", value)
        elif isinstance(value, float):
            out += b"\x01" + name + struct.pack("<d", value)
        elif isinstance(value, str):
            b = value.encode()
            out += b"\x02" + name + struct.pack("<i", len(b) + 1) + b + b"\x00"
        elif isinstance(value, dict):
            out += b"\x03" + name + encode(value)
        elif isinstance(value, (list, tuple)):
            out += b"\x04" + name + encode({str(i): v for i, v in enumerate(value)})
        elif value is None:
            out += b"\x0a" + name
        else:
            raise TypeError(f"cannot encode {type(value).__name__}")
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\x00"


def decode(data, pos=0):
    """Decodes the document at data[pos:]; returns (dict, end position)."""
    (length,) = struct.unpack_from("<i", data, pos)
    end = pos + length - 1
    pos += 4
    doc = {}
    while pos < end:
        kind = data[pos]
        pos += 1
        nul = data.index(b"\x00", pos)
        key = data[pos:nul].decode()
        pos = nul + 1
        if kind == 0x01:
            (value,) = struct.unpack_from("<d", data, pos)
            pos += 8
        elif kind in (0x02, 0x0D, 0x0E):
            (n,) = struct.unpack_from("<i", data, pos)
            value = data[pos + 4:pos + 3 + n].decode(errors="replace")
            pos += 4 + n
        elif kind in (0x03, 0x04):
            value, pos = decode(data, pos)
            if kind == 0x04:
                value = list(value.values())
        elif kind == 0x05:
            (n,) = struct.unpack_from("<i", data, pos)
            value = bytes(data[pos + 5:pos + 5 + n])
            pos += 5 + n
        elif kind == 0x07:
            value = data[pos:pos + 12].hex()
            pos += 12
        elif kind == 0x08:
            value = data[pos] != 0
            pos += 1
        elif kind in (0x09, 0x11, 0x12):
            (value,) = struct.unpack_from("<q", data, pos)
            pos += 8
        elif kind in (0x0A, 0x06, 0xFF, 0x7F):
            value = None
        elif kind == 0x0B:
            a = data.index(b"\x00", pos)
            b = data.index(b"\x00", a + 1)
            value = (data[pos:a].decode(), data[a + 1:b].decode())
            pos = b + 1
        elif kind == 0x10:
            (value,) = struct.unpack_from("<i", data, pos)
            pos += 4
        elif kind == 0x13:
            value = data[pos:pos + 16].hex()
            pos += 16
        else:
            raise ValueError(f"unsupported BSON type 0x{kind:02x}")
        doc[key] = value
    return doc, end + 1


class Connection:
    def __init__(self, uri, timeout=10.0):
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme != "mongodb" or not parts.hostname or "," in parts.netloc:
            raise ValueError("expected mongodb://HOST:PORT/")
        self.sock = socket.create_connection((parts.hostname, parts.port or 27017), timeout=timeout)
        self.request_id = 0

    def _recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def command(self, db, cmd):
        cmd = dict(cmd)
        cmd["$db"] = db
        self.request_id += 1
        body = struct.pack("<I", 0) + b"\x00" + encode(cmd)
        self.sock.sendall(struct.pack("<iiii", 16 + len(body), self.request_id, 0, OP_MSG) + body)
        length, _, _, opcode = struct.unpack("<iiii", self._recv(16))
        data = self._recv(length - 16)
        if opcode != OP_MSG or data[4] != 0:
            raise ValueError(f"unexpected reply (opcode {opcode})")
        reply, _ = decode(data, 5)
        if reply.get("ok") not in (1, 1.0, True):
            raise RuntimeError(f"{next(iter(cmd))}: {reply.get('errmsg', reply)}")
        return reply

    def ids(self, db, collection):
        reply = self.command(db, {"find": collection, "filter": {}, "projection": {"_id": 1},
                                  "batchSize": 10000})
        cursor = reply["cursor"]
        yield from (d["_id"] for d in cursor["firstBatch"])
        while cursor.get("id"):
            reply = self.command(db, {"getMore": Int64(cursor["id"]), "collection": collection,
                                      "batchSize": 10000})
            cursor = reply["cursor"]
            yield from (d["_id"] for d in cursor["nextBatch"])


def main(argv):
    if len(argv) < 2 or argv[0] not in ("count", "ids", "drop", "ping"):
        sys.stderr.write(__doc__)
        return 2
    verb, uri, rest = argv[0], argv[1], argv[2:]
    try:
        conn = Connection(uri)
        if verb == "ping":
            conn.command("admin", {"ping": 1})
            return 0
        if not rest:
            raise ValueError("missing database name")
        db, collections = rest[0], rest[1:] or DEFAULT_COLLECTIONS
        if verb == "drop":
            conn.command(db, {"dropDatabase": 1})
        elif verb == "count":
            counts = [int(conn.command(db, {"count": c}).get("n", 0)) for c in collections]
            print(sum(counts), *counts)
        else:
            out = sys.stdout
            for c in collections:
                for i in conn.ids(db, c):
                    out.write(f"{i}\n")
        return 0
    except (OSError, ValueError, RuntimeError, KeyError, struct.error) as e:
        sys.stderr.write(f"mongo_wire: {verb}: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
