"""Just enough of the MySQL client/server protocol for the branch proxy (see mysql_proxy.py).

Packets are a 3-byte little-endian length, a 1-byte sequence number and a payload. The proxy
parses the server greeting (HandshakeV10) and the client's HandshakeResponse41, checks
`mysql_native_password` scrambles, and builds its own greeting and response; everything after
authentication is relayed as is, apart from the commands that name a database.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import struct
from dataclasses import dataclass, replace

CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_COMPRESS = 0x20
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_ATTRS = 0x100000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000

COM_INIT_DB = 0x02
COM_QUERY = 0x03
NATIVE_PASSWORD = b"mysql_native_password"
MAX_PAYLOAD = 0xFFFFFF

ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049


class ProtocolError(Exception):
    pass


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(4)
    length = header[0] | header[1] << 8 | header[2] << 16
    return header[3], await reader.readexactly(length)


def frame(seq: int, payload: bytes) -> bytes:
    if len(payload) >= MAX_PAYLOAD:
        raise ProtocolError("payload too large for a single packet")
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def native_scramble(password: bytes, salt: bytes) -> bytes:
    """The `mysql_native_password` answer: SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mix = hashlib.sha1(salt + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))


def new_salt() -> bytes:
    """20 printable bytes: some clients read the salt as a NUL-terminated string."""
    alphabet = (string.ascii_letters + string.digits).encode()
    return bytes(secrets.choice(alphabet) for _ in range(20))


def err_packet(seq: int, code: int, message: str, sql_state: str = "28000") -> bytes:
    payload = b"\xff" + struct.pack("<H", code) + b"#" + sql_state.encode()[:5] + message.encode()
    return frame(seq, payload)


def _cstring(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(0, pos)
    return data[pos:end], end + 1


def _lenenc_int(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[pos + 1 : pos + 1 + width], "little"), pos + 1 + width


def _lenenc_bytes(value: bytes) -> bytes:
    if len(value) < 0xFB:
        return bytes([len(value)]) + value
    if len(value) < 1 << 16:
        return b"\xfc" + struct.pack("<H", len(value)) + value
    return b"\xfd" + struct.pack("<I", len(value))[:3] + value


@dataclass(frozen=True)
class Greeting:
    """The server's HandshakeV10."""

    server_version: bytes
    connection_id: int
    capabilities: int
    charset: int
    status: int
    reserved: bytes  # 10 bytes; MariaDB keeps its extended capabilities in the last 4
    salt: bytes
    plugin: bytes

    @classmethod
    def parse(cls, data: bytes) -> Greeting:
        if data[0] != 10:
            raise ProtocolError(f"unsupported protocol version {data[0]}")
        version, pos = _cstring(data, 1)
        connection_id = struct.unpack_from("<I", data, pos)[0]
        salt1 = data[pos + 4 : pos + 12]
        pos += 13
        cap_low, charset, status, cap_high, salt_len = struct.unpack_from("<HBHHB", data, pos)
        pos += 8
        reserved = data[pos : pos + 10]
        pos += 10
        capabilities = cap_low | cap_high << 16
        salt2 = b""
        if capabilities & CLIENT_SECURE_CONNECTION:
            n = max(13, salt_len - 8)
            salt2 = data[pos : pos + n].rstrip(b"\x00")
            pos += n
        plugin = b""
        if capabilities & CLIENT_PLUGIN_AUTH and pos < len(data):
            plugin = data[pos:].split(b"\x00", 1)[0]
        return cls(
            version, connection_id, capabilities, charset, status, reserved, salt1 + salt2, plugin
        )

    def build(self) -> bytes:
        salt = self.salt
        return b"".join(
            (
                b"\x0a",
                self.server_version + b"\x00",
                struct.pack("<I", self.connection_id),
                salt[:8],
                b"\x00",
                struct.pack(
                    "<HBHH",
                    self.capabilities & 0xFFFF,
                    self.charset,
                    self.status,
                    self.capabilities >> 16,
                ),
                bytes([len(salt) + 1]),
                self.reserved.ljust(10, b"\x00"),
                salt[8:] + b"\x00",
                self.plugin + b"\x00",
            )
        )

    def for_clients(self) -> Greeting:
        """What the proxy shows clients: no TLS, no compression, native passwords, own salt."""
        caps = self.capabilities & ~(CLIENT_SSL | CLIENT_COMPRESS)
        caps |= CLIENT_PLUGIN_AUTH | CLIENT_SECURE_CONNECTION | CLIENT_PROTOCOL_41
        return replace(self, capabilities=caps, salt=new_salt(), plugin=NATIVE_PASSWORD)


@dataclass(frozen=True)
class HandshakeResponse:
    """The client's HandshakeResponse41."""

    capabilities: int
    max_packet: int
    charset: int
    filler: bytes  # 23 bytes; MariaDB clients put extended capabilities in the last 4
    user: str
    auth: bytes
    database: str | None
    plugin: bytes

    @classmethod
    def parse(cls, data: bytes) -> HandshakeResponse:
        capabilities, max_packet, charset = struct.unpack_from("<IIB", data, 0)
        if not capabilities & CLIENT_PROTOCOL_41:
            raise ProtocolError("clients older than protocol 4.1 are not supported")
        filler = data[9:32]
        user, pos = _cstring(data, 32)
        if capabilities & CLIENT_PLUGIN_AUTH_LENENC:
            n, pos = _lenenc_int(data, pos)
            auth = data[pos : pos + n]
            pos += n
        elif capabilities & CLIENT_SECURE_CONNECTION:
            n = data[pos]
            auth = data[pos + 1 : pos + 1 + n]
            pos += 1 + n
        else:
            auth, pos = _cstring(data, pos)
        database: str | None = None
        if capabilities & CLIENT_CONNECT_WITH_DB and pos < len(data):
            raw, pos = _cstring(data, pos)
            database = raw.decode() or None
        plugin = b""
        if capabilities & CLIENT_PLUGIN_AUTH and pos < len(data):
            plugin, pos = _cstring(data, pos)
        return cls(capabilities, max_packet, charset, filler, user.decode(), auth, database, plugin)

    def build(self) -> bytes:
        caps = self.capabilities & ~(CLIENT_CONNECT_ATTRS | CLIENT_SSL | CLIENT_COMPRESS)
        caps |= CLIENT_PLUGIN_AUTH
        if self.database:
            caps |= CLIENT_CONNECT_WITH_DB
        else:
            caps &= ~CLIENT_CONNECT_WITH_DB
        if caps & CLIENT_PLUGIN_AUTH_LENENC:
            auth = _lenenc_bytes(self.auth)
        elif caps & CLIENT_SECURE_CONNECTION:
            auth = bytes([len(self.auth)]) + self.auth
        else:
            auth = self.auth + b"\x00"
        parts = [
            struct.pack("<IIB", caps, self.max_packet, self.charset),
            self.filler.ljust(23, b"\x00"),
            self.user.encode() + b"\x00",
            auth,
        ]
        if self.database:
            parts.append(self.database.encode() + b"\x00")
        parts.append(self.plugin + b"\x00")
        return b"".join(parts)


@dataclass(frozen=True)
class ProxyRefusal:
    """An answer the proxy sends itself instead of forwarding a command."""

    packet: bytes
