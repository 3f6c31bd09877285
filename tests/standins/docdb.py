"""DocumentDB stand-ins speaking the MongoDB wire protocol.

``DocDBServer`` is a mockupdb server that answers like an Amazon DocumentDB 5.0 cluster
endpoint: the replica-set handshake (``ismaster`` and ``hello`` with ``setName`` rs0),
optional TLS with a certificate made at test time, an optional SCRAM login (right and wrong
passwords), and ``serverStatus`` with a reply shaped like DocumentDB's.

``Nx27017Server`` runs ``nx-27017``, an independent MongoDB-wire server, as a process: its
serverStatus lacks opcounters and metrics.document, which is the "fields missing" case.
"""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import hashlib
import hmac
import json
import os
import secrets
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from bson import Binary
from mockupdb import MockupDB

from tests.standins._process import ServerProcess, StandinError, StartStop, accepts
from tests.standins.tls import TlsFiles, make_tls_files

WIRE_VERSION = 13  # DocumentDB 5.0 reports maxWireVersion 13
REPLICA_SET = "rs0"

# What DocumentDB 5.0 answers to serverStatus (trimmed to the sections it returns; values are
# distinct so a field read from the wrong place cannot pass a test by accident).
DOCDB_SERVER_STATUS: dict[str, Any] = {
    "host": "docdb-demo-1.cluster-abcdefghijkl.eu-west-1.docdb.amazonaws.com:27017",
    "version": "5.0.0",
    "process": "mongod",
    "pid": 1,
    "uptime": 86423,
    "uptimeMillis": 86423517,
    "uptimeEstimate": 86423,
    "localTime": None,  # filled per reply
    "connections": {"current": 17, "available": 4483, "totalCreated": 2291},
    "network": {"bytesIn": 84312, "bytesOut": 902113, "numRequests": 5021},
    "opcounters": {
        "insert": 1201,
        "query": 34587,
        "update": 412,
        "delete": 38,
        "getmore": 96,
        "command": 77810,
    },
    "opcountersRepl": {
        "insert": 0,
        "query": 0,
        "update": 0,
        "delete": 0,
        "getmore": 0,
        "command": 0,
    },
    "metrics": {
        "document": {"deleted": 71, "inserted": 1544, "returned": 128003, "updated": 509},
        "cursor": {"timedOut": 2, "open": {"noTimeout": 0, "pinned": 0, "total": 3}},
    },
    "ok": 1.0,
    "operationTime": None,  # filled per reply
}

# DocumentDB's answer when the login lacks the clusterMonitor role.
UNAUTHORIZED = (13, "Authorization failure")


@dataclass(frozen=True)
class Collection:
    """One collection as collStats and $indexStats describe it (DocumentDB's documented
    shapes: ``opCounter`` {numDocsIns, numDocsUpd, numDocsDel}, ``accesses.ops``)."""

    count: int
    size: int
    total_index_size: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    # index name -> accesses.ops
    indexes: Mapping[str, int] = field(default_factory=lambda: {"_id_": 0})


# A running operation as DocumentDB's currentOp lists it (``inprog`` entries).
def running_op(
    opid: int, op: str, ns: str, secs_running: int, command: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "desc": "Conn",
        "opid": opid,
        "active": True,
        "op": op,
        "ns": ns,
        "secs_running": secs_running,
        "microsecs_running": secs_running * 1_000_000 + 1234,
        "command": dict(command),
        "client": "10.0.1.25:51872",
        "threadId": 140_000 + opid,
    }


# --- SCRAM (server side of RFC 5802 as MongoDB uses it) ------------------------------------


def _scram_password(mechanism: str, user: str, password: str) -> bytes:
    if mechanism == "SCRAM-SHA-1":
        # MongoDB's SCRAM-SHA-1 salts the hex MD5 of "user:mongo:password", not the password.
        return hashlib.md5(f"{user}:mongo:{password}".encode()).hexdigest().encode()
    return password.encode()  # SASLprep is the identity for the ASCII passwords used in tests


def _parse_scram(message: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in message.decode().split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            fields[key] = value
    return fields


@dataclass
class _Conversation:
    user: str
    client_first_bare: str
    server_first: str
    nonce: str


class ScramResponder:
    """Answers saslStart/saslContinue for the users it knows; wrong proofs get MongoDB's
    ``Authentication failed.`` (code 18). Remembers which client connections logged in."""

    ITERATIONS = 4096

    def __init__(self, users: Mapping[str, str], mechanism: str = "SCRAM-SHA-1") -> None:
        self.users = dict(users)
        self.mechanism = mechanism
        self._digest = "sha1" if mechanism == "SCRAM-SHA-1" else "sha256"
        self._salt = secrets.token_bytes(16)
        self._conversations: dict[int, _Conversation] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self.authenticated_ports: set[int] = set()
        self.failures = 0

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._digest).digest()

    def start(self, payload: bytes) -> dict[str, Any]:
        text = payload.decode()
        client_first_bare = text.split(",", 2)[2]  # after the GS2 header "n,,"
        fields = _parse_scram(client_first_bare.encode())
        nonce = fields["r"] + base64.b64encode(secrets.token_bytes(18)).decode()
        server_first = f"r={nonce},s={base64.b64encode(self._salt).decode()},i={self.ITERATIONS}"
        with self._lock:
            conversation_id = self._next_id
            self._next_id += 1
            self._conversations[conversation_id] = _Conversation(
                fields["n"], client_first_bare, server_first, nonce
            )
        return {
            "conversationId": conversation_id,
            "done": False,
            "payload": Binary(server_first.encode()),
            "ok": 1.0,
        }

    def proceed(self, conversation_id: int, payload: bytes) -> dict[str, Any] | None:
        """The final server message, or None when the proof is wrong."""
        with self._lock:
            conversation = self._conversations.pop(conversation_id, None)
        if conversation is None:
            return None
        client_final = payload.decode()
        fields = _parse_scram(payload)
        without_proof = client_final.rsplit(",p=", 1)[0]
        password = self.users.get(conversation.user)
        if password is None or fields.get("r") != conversation.nonce:
            return None
        auth_message = ",".join(
            (conversation.client_first_bare, conversation.server_first, without_proof)
        ).encode()
        salted = hashlib.pbkdf2_hmac(
            self._digest,
            _scram_password(self.mechanism, conversation.user, password),
            self._salt,
            self.ITERATIONS,
        )
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._digest, client_key).digest()
        signature = self._hmac(stored_key, auth_message)
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if not hmac.compare_digest(expected, base64.b64decode(fields.get("p", ""))):
            return None
        server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return {
            "conversationId": conversation_id,
            "done": True,
            "payload": Binary(b"v=" + base64.b64encode(server_signature)),
            "ok": 1.0,
        }


# --- the server ----------------------------------------------------------------------------


class _TlsMockupDB(MockupDB):
    """mockupdb whose TLS uses our own SSLContext (its own calls ssl.wrap_socket, gone since
    Python 3.12) and whose handshakes happen per connection, so a client that rejects the
    certificate costs that connection only, not the accept thread."""

    def __init__(self, context: ssl.SSLContext | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._context = context
        self.handshake_failures: list[str] = []

    def _accept_loop(self) -> None:
        sock = self._listening_sock
        try:
            sock.setblocking(False)
        except OSError:  # stopped (socket closed) before this thread got going
            return
        while not self._stopped:
            try:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if not readable:
                    continue
                client, client_addr = sock.accept()
            except (OSError, ValueError):  # closed by stop()
                if self._stopped:
                    return
                continue
            client.setblocking(True)
            thread = threading.Thread(
                target=functools.partial(self._serve_client, client, client_addr), daemon=True
            )
            self._server_threads[thread] = None
            self._server_socks[client] = None
            thread.start()

    def _serve_client(self, client: socket.socket, client_addr: Any) -> None:
        if self._context is not None:
            client.settimeout(10)
            try:
                client = self._context.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.handshake_failures.append(str(exc))
                client.close()
                return
            client.settimeout(None)
            self._server_socks[client] = None
        try:
            self._server_loop(client, client_addr)
        except OSError:
            client.close()  # the client went away mid-message (e.g. pymongo timed out)


class DocDBServer(StartStop):
    """A DocumentDB 5.0 stand-in on 127.0.0.1.

    ``users`` turns on SCRAM login (then serverStatus needs an authenticated connection, as
    on DocumentDB); ``tls`` serves TLS with those files; ``replica_set`` None answers as a
    standalone; ``server_status`` replaces the reply; ``status_error`` makes serverStatus fail
    with that (code, message). ``restart()`` comes back on the same port.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tls: TlsFiles | None = None,
        users: Mapping[str, str] | None = None,
        mechanism: str = "SCRAM-SHA-1",
        replica_set: str | None = REPLICA_SET,
        server_status: Mapping[str, Any] | None = None,
        status_error: tuple[int, str] | None = None,
        collections: Mapping[tuple[str, str], Collection] | None = None,
        current_ops: list[dict[str, Any]] | None = None,
        refused: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.tls = tls
        self.scram = ScramResponder(users, mechanism) if users else None
        self.replica_set = replica_set
        self.server_status = copy.deepcopy(
            dict(server_status) if server_status is not None else DOCDB_SERVER_STATUS
        )
        self.status_error = status_error
        # (database, collection) -> its statistics; ops in progress besides the caller's own
        # currentOp; command name (lower case) -> the error it is refused with.
        self.collections = dict(collections or {})
        self.current_ops = list(current_ops or [])
        self.refused = dict(refused or {})
        self.port = 0
        self.status_requests = 0
        # Every command name received, in order: what the collector asks of a server.
        self.commands: list[str] = []
        self._mock: _TlsMockupDB | None = None
        self._started = time.time()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def handshake_failures(self) -> list[str]:
        return self._mock.handshake_failures if self._mock is not None else []

    def _context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        return context

    def start(self) -> Self:
        mock = _TlsMockupDB(
            self._context(), port=self.port or None, request_timeout=5, auto_ismaster=False
        )
        mock._address = (self.host, self.port or None)
        mock.autoresponds(self._respond)
        self.port = int(mock.run())
        self._mock = mock
        return self

    def stop(self) -> None:
        mock, self._mock = self._mock, None
        if mock is not None:
            mock.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- answers ---------------------------------------------------------------------------

    def _hello(self) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "ismaster": True,
            "isWritablePrimary": True,
            "secondary": False,
            "helloOk": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": time.time(),
            "minWireVersion": 0,
            "maxWireVersion": WIRE_VERSION,
            "logicalSessionTimeoutMinutes": 30,
            "ok": 1.0,
        }
        if self.replica_set is not None:
            reply.update(
                setName=self.replica_set,
                setVersion=1,
                hosts=[self.address],
                me=self.address,
                primary=self.address,
            )
        if self.scram is not None:
            reply["saslSupportedMechs"] = [self.scram.mechanism]
        return reply

    def _status(self) -> dict[str, Any]:
        reply = copy.deepcopy(self.server_status)
        if "localTime" in reply:
            reply["localTime"] = time.time()
        if "operationTime" in reply:
            reply.pop("operationTime")
        return reply

    def _respond(self, request: Any) -> bool:
        name = (request.command_name or "").lower()
        doc = request.doc
        self.commands.append(request.command_name or "")
        if name in ("ismaster", "hello"):
            request.reply(self._hello())
        elif name == "saslstart" and self.scram is not None:
            mechanism = doc.get("mechanism")
            if mechanism != self.scram.mechanism:
                request.command_err(2, f"Unsupported mechanism {mechanism}")
            else:
                request.reply(self.scram.start(bytes(doc["payload"])))
        elif name == "saslcontinue" and self.scram is not None:
            answer = self.scram.proceed(int(doc["conversationId"]), bytes(doc["payload"]))
            if answer is None:
                self.scram.failures += 1
                request.command_err(18, "Authentication failed.")
            else:
                self.scram.authenticated_ports.add(request.client_port)
                request.reply(answer)
        elif name == "serverstatus":
            self.status_requests += 1
            if self.scram is not None and request.client_port not in self.scram.authenticated_ports:
                request.command_err(13, "Command serverStatus requires authentication")
            elif self.status_error is not None:
                request.command_err(*self.status_error)
            else:
                request.reply(self._status())
        elif name in self.refused:
            request.command_err(*self.refused[name])
        elif name in self._READS:
            if self.scram is not None and request.client_port not in self.scram.authenticated_ports:
                request.command_err(13, f"Command {request.command_name} requires authentication")
            else:
                self._read(name, request)
        elif name in ("ping", "endsessions", "buildinfo"):
            request.reply({"ok": 1.0, "version": self.server_status.get("version", "5.0.0")})
        else:
            request.command_err(59, f"Feature not supported: {request.command_name}")
        return True

    _READS = frozenset({"listdatabases", "listcollections", "collstats", "aggregate", "currentop"})

    def _read(self, name: str, request: Any) -> None:
        doc = request.doc
        database = doc.get("$db", "admin")
        if name == "listdatabases":
            names = sorted({db for db, _ in self.collections})
            request.reply(
                {
                    "databases": [
                        {"name": db, "sizeOnDisk": 65536, "empty": False} for db in names
                    ],
                    "totalSize": 65536 * len(names),
                    "ok": 1.0,
                }
            )
        elif name == "listcollections":
            batch = [
                {"name": coll, "type": "collection"}
                for db, coll in sorted(self.collections)
                if db == database
            ]
            request.reply(
                {
                    "cursor": {
                        "id": 0,
                        "ns": f"{database}.$cmd.listCollections",
                        "firstBatch": batch,
                    },
                    "ok": 1.0,
                }
            )
        elif name == "collstats":
            stats = self.collections.get((database, doc["collStats"]))
            if stats is None:
                request.command_err(26, f"ns not found {database}.{doc['collStats']}")
                return
            request.reply(self._coll_stats(database, doc["collStats"], stats))
        elif name == "aggregate":
            coll = doc["aggregate"]
            stats = self.collections.get((database, coll))
            pipeline = doc.get("pipeline", [])
            if stats is None or [list(stage) for stage in pipeline] != [["$indexStats"]]:
                request.command_err(59, f"Feature not supported: {pipeline}")
                return
            indexes: list[dict[str, Any]] = [
                {
                    "name": index,
                    "key": {"_id": 1} if index == "_id_" else {index.rsplit("_", 1)[0]: 1},
                    "host": "docdb-demo-1.cluster-abcdefghijkl.eu-west-1.docdb.amazonaws.com",
                    "accesses": {
                        "ops": ops,
                        "since": datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC),
                    },
                }
                for index, ops in stats.indexes.items()
            ]
            request.reply(
                {"cursor": {"id": 0, "ns": f"{database}.{coll}", "firstBatch": indexes}, "ok": 1.0}
            )
        else:  # currentop: the caller's own command is among the operations, as on DocumentDB
            own = running_op(
                1, "command", "admin.$cmd", 0, {k: v for k, v in doc.items() if k != "lsid"}
            )
            request.reply({"inprog": [*self.current_ops, own], "ok": 1.0})

    @staticmethod
    def _coll_stats(database: str, coll: str, stats: Collection) -> dict[str, Any]:
        return {
            "ns": f"{database}.{coll}",
            "count": stats.count,
            "size": stats.size,
            "avgObjSize": stats.size // stats.count if stats.count else 0,
            "storageSize": stats.size + 8192,
            "capped": False,
            "nindexes": len(stats.indexes),
            "totalIndexSize": stats.total_index_size,
            "indexSizes": {
                index: stats.total_index_size // len(stats.indexes) for index in stats.indexes
            },
            "collScans": 3,
            "idxScans": 11,
            "opCounter": {
                "numDocsIns": stats.inserted,
                "numDocsUpd": stats.updated,
                "numDocsDel": stats.deleted,
            },
            "cacheStats": {
                "collBlksHit": 120,
                "collBlksRead": 4,
                "collHitRatio": 96.7742,
                "idxBlksHit": 80,
                "idxBlksRead": 1,
                "idxHitRatio": 98.7654,
            },
            "lastReset": "2026-12-01 08:00:00.000000+00",
            "ok": 1.0,
        }

    # --- what a user would configure -------------------------------------------------------

    def mongo_info(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        **parameters: str,
    ) -> dict[str, Any]:
        """A MONGO_INFO object for this server, strings everywhere, DocumentDB-style."""
        connect: dict[str, str] = {"address": self.host, "port": str(self.port)}
        if user is not None:
            connect["user"] = user
        if password is not None:
            connect["pwd"] = password
        parameter: dict[str, str] = {}
        if user is not None:
            parameter["authSource"] = "admin"
        if self.tls is not None:
            parameter["tls"] = "true"
            parameter["tlsCAFile"] = ca_file or str(self.tls.ca)
        if self.replica_set is not None:
            parameter.update(
                replicaSet=self.replica_set,
                readPreference="secondaryPreferred",
                retryWrites="false",
            )
        parameter.update(parameters)
        return {"connect": connect, "parameter": parameter}


def start_demo_docdb(directory: Path) -> tuple[DocDBServer, str]:
    """For `make demo`: a running DocumentDB stand-in with TLS (CA made in ``directory``) and
    a SCRAM login, and the MONGO_INFO JSON that reaches it. Stop the server when done."""
    tls = make_tls_files(directory)
    server = DocDBServer(tls=tls, users={"monitor": "demo-Pa55:word"}).start()
    info = server.mongo_info(user="monitor", password="demo-Pa55:word")
    return server, json.dumps(info)


# --- nx-27017 ------------------------------------------------------------------------------


def _nx_command() -> str:
    candidate = Path(sys.executable).parent / "nx-27017"
    if candidate.exists():
        return str(candidate)
    raise StandinError(f"nx-27017 not found next to {sys.executable} (pip install nx-27017)")


class Nx27017Server(ServerProcess):
    """``nx-27017 --db memory`` as a process on a free port in ``directory``; ``restart()``,
    and ``start()`` after ``stop()``, come back on the same port."""

    what = "nx-27017"
    slug = "nx-27017"
    log_name = "nx-27017.out"
    keeps_port = True

    def __init__(self, directory: Path) -> None:
        super().__init__(start_timeout=30, directory=directory)
        self.directory = directory
        self._log = directory / "nx-27017.log"

    def command(self, port: int) -> list[str]:
        return [
            _nx_command(), "--db", "memory", "--host", self.host, "-p", str(port),
            "--log-file", str(self._log), "--pid-file", str(self.directory / "nx-27017.pid"),
        ]  # fmt: skip

    def ready(self) -> bool:
        return accepts(self.host, self.port)

    def environment(self) -> dict[str, str]:
        # stdout goes to a file, block-buffered: a failed start would show an empty log tail.
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def mongo_info(self, **parameters: str) -> dict[str, Any]:
        return {
            "connect": {"address": self.host, "port": str(self.port)},
            "parameter": dict(parameters),
        }
