"""The desk's loopback control endpoint for softphone hooks (`monitor call start|end`).

    POST /call/start   {"id": "CALL-ID", "peer": "sip:..."}       (both optional)
    POST /call/end     {"by": "agent" | "caller", "id": "CALL-ID"} (both optional)
    Authorization: Bearer TOKEN, Content-Type: application/json

Only a local program that can read the desk's token file may end a call: the
token is made by the desk in a file only this user can read; requests carrying
an `Origin` header (any web page), a content type other than JSON (the only
kinds a page can send without asking first), or a Host that is not loopback
(DNS rebinding) are refused. It listens on 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import hmac
import http.client
import json
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from monitor.events import Control

log = logging.getLogger("monitor.live")

HOST = "127.0.0.1"
DEFAULT_PORT = 8766
MAX_HEAD = 8192
MAX_BODY = 4096
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@:")
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           415: "Unsupported Media Type", 503: "Service Unavailable"}


class ControlError(RuntimeError):
    """A control request the desk refused, or no desk to talk to (one line for the user)."""


def runtime_dir() -> Path:
    """Where the token lives: $XDG_RUNTIME_DIR/call-monitor, else a private dir in the cache."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) if base and Path(base).is_dir() else Path.home() / ".cache"
    return root / "call-monitor"


def token_path(port: int) -> Path:
    return runtime_dir() / f"control-{port}.token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def make_token_file(port: int, token: str | None = None) -> tuple[str, Path]:
    """This desk's token for its control port, in a file only this user can read.

    Write it only once the port is bound: a second desk that fails to bind the same
    port must not replace the running desk's token.
    """
    path = token_path(port)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    token = token or new_token()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token, path


def remove_token_file(port: int, token: str) -> None:
    """At exit: remove the token file if it is still this desk's."""
    path = token_path(port)
    try:
        if path.read_text().strip() == token:
            path.unlink()
    except OSError:
        pass


def read_token_file(port: int) -> str:
    path = token_path(port)
    try:
        st = path.stat()
        token = path.read_text().strip()
    except OSError as exc:
        raise ControlError(f"no control token at {path} ({exc.strerror}): is `monitor live` running "
                           f"with --control-port {port}? (or pass --token)") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ControlError(f"{path} is readable by others: refusing to use it (chmod 600)")
    return token


def _valid_id(v: object) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 128 and set(v) <= ID_CHARS


def parse_command(path: str, body: bytes) -> Control:
    """The Control a request asks for; ValueError with a short reason if it is not valid."""
    if path not in ("/call/start", "/call/end"):
        raise LookupError("use POST /call/start or /call/end")
    try:
        obj = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise ValueError("body is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(obj) - {"id", "by", "peer"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    by, call_id, peer = obj.get("by"), obj.get("id"), obj.get("peer")
    if path == "/call/start" and by is not None:
        raise ValueError("'by' goes with /call/end")
    if by not in (None, "agent", "caller"):
        raise ValueError("by must be agent or caller")
    if call_id is not None and not _valid_id(call_id):
        raise ValueError("bad call id (1-128 of letters, digits, -_.@:)")
    if peer is not None and not (isinstance(peer, str) and len(peer) <= 256 and peer.isprintable()):
        raise ValueError("bad peer")
    if path == "/call/start":
        return Control(action="start", call_id=call_id, peer=peer, source="hook")
    return Control(action="end", by=by, call_id=call_id, peer=peer, source="hook")


async def serve_control(on_control: Callable[[Control], Awaitable[None]], token: str,
                        port: int = DEFAULT_PORT) -> asyncio.AbstractServer:
    """Listen on 127.0.0.1:`port` (0 = any free port) and hand each valid command to `on_control`."""
    if not token:
        raise ValueError("the control endpoint needs a token")
    expected = f"Bearer {token}".encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, message = 400, "bad request"
        try:
            status, message = await _serve_one(reader, expected, on_control)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, UnicodeDecodeError):
            status, message = 400, "bad request"
        except ConnectionError:
            writer.close()
            return
        data = json.dumps({"ok": status == 200, "message": message}).encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        try:
            writer.write(head.encode() + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, HOST, port, limit=MAX_HEAD)


async def _serve_one(reader: asyncio.StreamReader, expected: bytes,
                     on_control: Callable[[Control], Awaitable[None]]) -> tuple[int, str]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if line:
            k, sep, v = line.partition(":")
            if not sep:
                return 400, "bad header"
            headers.setdefault(k.strip().lower(), []).append(v.strip())
    one = {k: v[0] for k, v in headers.items() if len(v) == 1}
    if any(len(v) > 1 for v in headers.values()):
        return 400, "repeated header"
    if "origin" in headers or "sec-fetch-site" in headers:
        return 403, "requests from web pages are not accepted"
    host = one.get("host", "").rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        return 403, "host must be 127.0.0.1"
    if not hmac.compare_digest(one.get("authorization", "").encode(), expected):
        return 401, "unauthorized"
    if method != "POST":
        return 405, "use POST"
    if one.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return 415, "content type must be application/json"
    if "?" in target:
        return 400, "no query string: send JSON"
    if "transfer-encoding" in headers:  # with a Content-Length too, the two could disagree: smuggling
        return 400, "no transfer-encoding: send a Content-Length"
    length_text = one.get("content-length")
    if length_text is None or not length_text.isdigit():
        return 411, "content-length required"
    length = int(length_text)
    if length > MAX_BODY:
        return 413, "body too large"
    body = await asyncio.wait_for(reader.readexactly(length), timeout=5)
    try:
        ctl = parse_command(target, body)
    except LookupError as exc:
        return 404, str(exc)
    except ValueError as exc:
        return 400, str(exc)
    try:
        await asyncio.wait_for(on_control(ctl), timeout=5)
    except TimeoutError:
        return 503, "desk busy"
    log.info("softphone hook: %s%s", ctl.action, f" by {ctl.by}" if ctl.by else "")
    return 200, "ok"


def post_control(action: str, port: int = DEFAULT_PORT, token: str | None = None, by: str | None = None,
                 call_id: str | None = None, peer: str | None = None) -> str:
    """What `monitor call` does: one command to the desk on this machine."""
    token = token or read_token_file(port)
    body = json.dumps({k: v for k, v in (("by", by), ("id", call_id), ("peer", peer)) if v}).encode()
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("POST", f"/call/{action}", body=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = conn.getresponse()
        reply = r.read().decode("utf-8", "replace")
    except OSError as exc:
        raise ControlError(f"no live desk on port {port}: {exc.strerror or exc}") from None
    try:
        message = json.loads(reply).get("message", reply)
    except (ValueError, AttributeError):
        message = reply
    if r.status != 200:
        raise ControlError(f"desk refused: {r.status} {message}")
    return str(message)
