"""A stand-in PostgreSQL server for the tests that must see what a client
sends: it speaks the protocol's opening (TLS, startup, a cleartext password
request) and no more; and the certificates such tests use."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

from harness import remember_secret


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> None:
    """A CA and a server certificate for localhost / 127.0.0.1."""
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=identity-test-ca")
    openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key")
    openssl(d, "req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "7",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext")


class CapturingPostgres:
    """Speaks just enough of PostgreSQL's protocol to take a password: TLS
    (after an SSLRequest, or at once: `sslnegotiation=direct`, with the
    `postgresql` ALPN protocol PostgreSQL 17 demands), the startup message,
    a request for a cleartext password; then it refuses the login. Records
    each password with the startup parameters, how TLS began and the ALPN
    protocol agreed."""

    def __init__(self, cert: Path, key: Path):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.set_alpn_protocols(["postgresql"])
        self.passwords: list[tuple[dict, str]] = []
        self.sessions: list[dict] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    @staticmethod
    def read(conn, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = conn.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def one(self, conn):
        try:
            first = conn.recv(1, socket.MSG_PEEK)
            direct = first == b"\x16"  # a TLS handshake record: no SSLRequest
            if not direct:
                length, code = struct.unpack("!ii", self.read(conn, 8))
                assert length == 8 and code == 80877103, "an SSLRequest first"
                conn.sendall(b"S")
            conn = self.context.wrap_socket(conn, server_side=True)
            self.sessions.append({"direct": direct, "alpn": conn.selected_alpn_protocol()})
            (length,) = struct.unpack("!i", self.read(conn, 4))
            body = self.read(conn, length - 4)[4:]  # skip the protocol version
            fields = body.split(b"\0")
            params = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields) - 2, 2) if fields[i]}
            self.sessions[-1]["user"] = params.get("user")
            conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind, length = struct.unpack("!ci", self.read(conn, 5))
            assert kind == b"p"
            password = self.read(conn, length - 4).rstrip(b"\0").decode()
            remember_secret(password)
            self.passwords.append((params, password))
            error = b"SFATAL\0C28P01\0Mstand-in: password taken\0\0"
            conn.sendall(b"E" + struct.pack("!i", len(error) + 4) + error)
        except Exception:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()
