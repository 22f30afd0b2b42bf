"""A MySQL-protocol proxy that gives branch passwords access to their branch's keyspaces.

On PlanetScale a branch password connects to vtgate, where `USE commerce` selects the keyspace
`commerce` *of that branch*. Here a keyspace of a branch is a MariaDB schema with a prefixed
name, so the proxy sits between the client and MariaDB:

1. it greets the client itself (no TLS, `mysql_native_password`, its own salt) and checks the
   client's scramble against the branch password the API handed out;
2. it logs in to MariaDB as the password's own user (branch_users.py: grants on that branch's
   schemas only, never the emulator's DSN user), using the capabilities the client chose, so
   both sides agree on the packet format;
3. it relays every packet, rewriting the database name of the handshake, of `COM_INIT_DB` and of
   a `USE <keyspace>` query to the branch's schema, and refusing names that are no keyspace.

Why a proxy and not one MariaDB user per branch: a user cannot make `USE commerce` land in
`psemu__b7_commerce`, and the engine must run the very statements it runs against PlanetScale.
What it does not rewrite: keyspace-qualified names inside statements (`commerce.product`);
`SELECT DATABASE()` shows the physical name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable

from planetscale_emulator import mysql_protocol as mp
from planetscale_emulator.config import EmulatorConfig

log = logging.getLogger(__name__)

_USE = re.compile(rb"^\s*use\s+`?([A-Za-z0-9_$]+)`?\s*;?\s*$", re.IGNORECASE)
_PASSTHROUGH_SCHEMAS = ("information_schema",)

# username -> (password, branch id), or None for an unknown or expired password.
CredentialLookup = Callable[[str], "tuple[str, int] | None"]


class BranchProxy:
    def __init__(self, config: EmulatorConfig, lookup: CredentialLookup) -> None:
        self.config = config
        self.lookup = lookup
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._serve, self.config.host, self.config.mysql_port
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def resolve(self, branch_id: int, name: str) -> str | None:
        """The MariaDB schema for `name` on the branch, or None when it is no keyspace."""
        if name in self.config.keyspaces:
            return self.config.physical_database(branch_id, name)
        if name.lower() in _PASSTHROUGH_SCHEMAS:
            return name
        return None

    async def _open_backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.config.mysql
        if "unix_socket" in address.options:
            return await asyncio.open_unix_connection(address.options["unix_socket"])
        return await asyncio.open_connection(address.host, address.port)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        backend_w: asyncio.StreamWriter | None = None
        try:
            backend_r, backend_w = await self._open_backend()
            _, greeting_raw = await mp.read_packet(backend_r)
            backend_greeting = mp.Greeting.parse(greeting_raw)
            ours = backend_greeting.for_clients()
            client_w.write(mp.frame(0, ours.build()))
            await client_w.drain()
            _, response_raw = await mp.read_packet(client_r)
            response = mp.HandshakeResponse.parse(response_raw)
            found = await self._authenticate(response, ours.salt)
            if found is None:
                client_w.write(
                    mp.err_packet(
                        2, mp.ER_ACCESS_DENIED, f"Access denied for user '{response.user}'"
                    )
                )
                await client_w.drain()
                return
            branch_id, secret = found
            database = None
            if response.database:
                database = self.resolve(branch_id, response.database)
                if database is None:
                    client_w.write(
                        mp.err_packet(
                            2, mp.ER_BAD_DB, f"Unknown database '{response.database}'", "42000"
                        )
                    )
                    await client_w.drain()
                    return
            final = await self._login_backend(
                backend_r, backend_w, backend_greeting, response, database, secret
            )
            client_w.write(mp.frame(2, final))
            await client_w.drain()
            if final[0] != 0x00:
                return
            await self._relay(client_r, client_w, backend_r, backend_w, branch_id)
        except (asyncio.IncompleteReadError, ConnectionError, mp.ProtocolError, ValueError) as exc:
            log.debug("proxy connection ended: %s", exc)
        finally:
            for writer in (client_w, backend_w):
                if writer is not None:
                    writer.close()

    async def _authenticate(
        self, response: mp.HandshakeResponse, salt: bytes
    ) -> tuple[int, str] | None:
        """(branch id, password) when the client proved it knows a live branch password."""
        found = await asyncio.get_running_loop().run_in_executor(None, self.lookup, response.user)
        if found is None:
            return None
        password, branch_id = found
        if response.auth != mp.native_scramble(password.encode(), salt):
            return None
        return branch_id, password

    async def _login_backend(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        greeting: mp.Greeting,
        client: mp.HandshakeResponse,
        database: str | None,
        password: str,
    ) -> bytes:
        """Log in as the branch password's own user; return the final OK or ERR payload."""
        secret = password.encode()
        ours = mp.HandshakeResponse(
            capabilities=client.capabilities & greeting.capabilities | mp.CLIENT_PROTOCOL_41,
            max_packet=client.max_packet,
            charset=client.charset,
            filler=client.filler,
            user=client.user,
            auth=mp.native_scramble(secret, greeting.salt[:20]),
            database=database,
            plugin=mp.NATIVE_PASSWORD,
        )
        writer.write(mp.frame(1, ours.build()))
        await writer.drain()
        while True:
            seq, payload = await mp.read_packet(reader)
            if payload[:1] in (b"\x00", b"\xff"):
                return payload
            if payload[:1] == b"\xfe":  # AuthSwitchRequest
                plugin, _, data = payload[1:].partition(b"\x00")
                if plugin != mp.NATIVE_PASSWORD:
                    raise mp.ProtocolError(f"backend asks for unsupported auth plugin {plugin!r}")
                writer.write(
                    mp.frame(seq + 1, mp.native_scramble(secret, data.rstrip(b"\x00")[:20]))
                )
                await writer.drain()
                continue
            raise mp.ProtocolError("unexpected packet during backend authentication")

    async def _relay(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        backend_r: asyncio.StreamReader,
        backend_w: asyncio.StreamWriter,
        branch_id: int,
    ) -> None:
        async def upstream() -> None:
            while True:
                header = await client_r.readexactly(4)
                length = header[0] | header[1] << 8 | header[2] << 16
                payload = await client_r.readexactly(length)
                if header[3] == 0 and length < mp.MAX_PAYLOAD:
                    rewritten = self._rewrite(payload, branch_id)
                    if isinstance(rewritten, mp.ProxyRefusal):
                        client_w.write(rewritten.packet)
                        await client_w.drain()
                        continue
                    if rewritten is not payload:
                        header, payload = mp.frame(0, rewritten)[:4], rewritten
                backend_w.write(header + payload)
                await backend_w.drain()

        async def downstream() -> None:
            while True:
                chunk = await backend_r.read(65536)
                if not chunk:
                    return
                client_w.write(chunk)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    def _rewrite(self, payload: bytes, branch_id: int) -> bytes | mp.ProxyRefusal:
        """Map the database a command selects; other commands pass untouched."""
        if not payload:
            return payload
        name: str | None = None
        if payload[0] == mp.COM_INIT_DB:
            name = payload[1:].decode(errors="replace")
        elif payload[0] == mp.COM_QUERY:
            match = _USE.match(payload[1:])
            if match:
                name = match.group(1).decode()
        if name is None:
            return payload
        target = self.resolve(branch_id, name)
        if target is None:
            return mp.ProxyRefusal(
                mp.err_packet(1, mp.ER_BAD_DB, f"Unknown database '{name}'", "42000")
            )
        if payload[0] == mp.COM_INIT_DB:
            return bytes([mp.COM_INIT_DB]) + target.encode()
        return bytes([mp.COM_QUERY]) + f"USE `{target}`".encode()
