"""Token and Origin checks for the hub.

Two roles: desks (push alerts) and consoles (read and acknowledge). A desk token may be
bound to one desk name so a leaked desk token cannot speak for another desk.

Every refusal looks the same to the client (close 4401 "invalid token", HTTP 401): a
guesser must not learn that a token is valid for the other role or for another desk.
The real reason is in `AuthResult.detail`, for the hub's log only.
"""
from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Role = Literal["desk", "console"]


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    code: int = 0  # websocket close code when not ok
    reason: str = ""
    http_status: int = 200
    detail: str = ""  # the real reason, for the hub's log; never sent to the client
    name: str | None = None  # console: the supervisor the token belongs to, when named


REFUSED_REASON = "invalid token"


def _refused(detail: str) -> AuthResult:
    from .protocol import CLOSE_UNAUTHORIZED
    return AuthResult(False, CLOSE_UNAUTHORIZED, REFUSED_REASON, 401, detail)


def _matches(token: str, candidates: list[bytes]) -> bool:
    # Check every candidate (no early exit) with a constant-time compare so the reply time
    # says nothing about which token or how much of it matched.
    given = token.encode("utf-8", "surrogatepass")
    found = False
    for c in candidates:
        found |= hmac.compare_digest(given, c)
    return found


class Authenticator:
    """Decides whether a token may act in a role (and as which desk)."""

    def __init__(self, desk_tokens: Mapping[str, str | None], console_tokens: set[str],
                 console_names: Mapping[str, str] | None = None) -> None:
        if not desk_tokens or not console_tokens:
            raise ValueError("the hub needs at least one desk token and one console token")
        for t in [*desk_tokens, *console_tokens]:
            if not t or not t.isprintable() or not t.isascii() or " " in t:
                raise ValueError("tokens must be non-empty printable ASCII without spaces")
        self._desk = {t.encode(): bound for t, bound in desk_tokens.items()}
        self._desk_list = list(self._desk)
        self._console = [t.encode() for t in console_tokens]
        # One token per supervisor: acknowledgements record the token's name, not a name the
        # client makes up.
        self._names = [(t.encode(), n) for t, n in (console_names or {}).items()]

    def check(self, role: Role, token: str | None, desk: str | None = None) -> AuthResult:
        from .protocol import CLOSE_UNAUTHORIZED
        if not token:
            return AuthResult(False, CLOSE_UNAUTHORIZED, "missing token", 401, "missing token")
        is_desk = _matches(token, self._desk_list)
        is_console = _matches(token, self._console)
        if role == "console":
            if is_console:
                return AuthResult(True, name=self._console_name(token))
            if is_desk:
                return _refused("a desk token cannot open a console")
            return _refused("unknown token")
        if not is_desk:
            if is_console:
                return _refused("a console token cannot push alerts")
            return _refused("unknown token")
        bound = self._bound_desk(token)
        if bound is not None and desk != bound:
            return _refused(f"this token is bound to desk {bound}")
        return AuthResult(True)

    def _console_name(self, token: str) -> str | None:
        given = token.encode("utf-8", "surrogatepass")
        found = None
        for t, name in self._names:
            if hmac.compare_digest(given, t):
                found = name
        return found

    def _bound_desk(self, token: str) -> str | None:
        given = token.encode("utf-8", "surrogatepass")
        for t, bound in self._desk.items():
            if hmac.compare_digest(given, t):
                return bound
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The token from an `Authorization: Bearer T` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def origin_allowed(origin: str | None, host_header: str | None, tls: bool,
                   allowed: tuple[str, ...]) -> bool:
    """Browser Origin check (CSWSH defence).

    No Origin header: not a browser (desk client, terminal console), allowed; the token
    still has to be right. Otherwise the origin must be listed in `allowed`, or, by
    default, be this hub itself (same scheme, host and port as the request's Host header).
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    if origin in allowed:
        return True
    if not host_header:
        return False
    parts = urlsplit(origin)
    scheme = "https" if tls else "http"
    if parts.scheme != scheme or parts.path not in ("", "/"):
        return False
    default_port = 443 if tls else 80
    try:
        o_port = parts.port or default_port
    except ValueError:
        return False
    host = parts.hostname or ""
    req = urlsplit(f"{scheme}://{host_header}")
    try:
        r_port = req.port or default_port
    except ValueError:
        return False
    return host.lower() == (req.hostname or "").lower() and o_port == r_port
