"""Tokens (the only `import jwt`) and the request's principal.

Access and refresh tokens are JWTs with `sub`, `exp`, `iat`, `nbf`, `aud`, `iss`,
`jti` and `typ` ("access" or "refresh"), all required on decode, with the
algorithm pinned by configuration (never read from the token header). Access
tokens carry no permissions: those always come from the permission loader, so a
role change or a deactivation applies on the very next request.

Access tokens also carry `sid`, the session (refresh-token family) they were
issued in, and an `iat` with sub-second precision: the caller's permission entry
lists the user's revoked sessions and the time before which their tokens no
longer count (a password change), and `Context.viewer_access` refuses a token
that either rules out (SECURITY.md, "What ends a session, and how fast").
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jwt
from fastapi import Request

from permbase.errors import Unauthenticated

if TYPE_CHECKING:
    from permbase.settings import Settings

TokenType = Literal["access", "refresh"]
REQUIRED_CLAIMS = ["sub", "exp", "iat", "nbf", "aud", "iss", "jti", "typ"]
# An Authorization header longer than this is refused before it is parsed or
# decoded (a real one is ~400 bytes).
MAX_AUTHORIZATION_BYTES = 8 * 1024
# ASCII digits only: str.isdigit() also admits "١٢" (Arabic-Indic) and int() reads it as 12
_SUB = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who, per a valid access token. Whether the account
    is still active is checked against the permission loader, not the token."""

    user_id: int
    token_id: str
    session_id: str  # the refresh-token family the token was issued in
    issued_at: float  # the token's `iat`, seconds since the epoch


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        if self.algorithm.startswith("HS"):
            secret = settings.jwt_secret.get_secret_value()
            self._sign_key: Any = secret
            self._verify_key: Any = secret
        else:
            private, public = (
                settings.jwt_private_key_file,
                settings.jwt_public_key_file,
            )
            if not (private and public):  # Settings validates this too
                msg = f"JWT_ALGORITHM={self.algorithm} needs key files"
                raise ValueError(msg)
            self._sign_key = Path(private).read_text()
            self._verify_key = Path(public).read_text()
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_s
        # verified tokens, by their text (failures are not cached)
        self._verified = lru_cache(maxsize=4096)(self._verify)
        self.ttl = {
            "access": timedelta(seconds=settings.access_token_ttl_s),
            "refresh": timedelta(seconds=settings.refresh_token_ttl_s),
        }

    def issue(
        self,
        user_id: int,
        typ: TokenType,
        *,
        family_id: str | None = None,
        now: datetime | None = None,
    ) -> IssuedToken:
        now = now or datetime.now(UTC)
        expires_at = now + self.ttl[typ]
        jti = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            # to the microsecond (RFC 7519 allows a fraction): a token issued just
            # after a password change must not look older than the change
            "iat": now.timestamp(),
            "nbf": now,
            "exp": expires_at,
            "aud": self.audience,
            "iss": self.issuer,
            "jti": jti,
            "typ": typ,
        }
        if typ == "access":
            # the session: the family of the refresh token issued with it, or a
            # session of its own (a token issued outside login, e.g. by a test)
            claims["sid"] = family_id or str(uuid.uuid4())
        elif family_id is not None:
            claims["fam"] = family_id
        token = jwt.encode(claims, self._sign_key, algorithm=self.algorithm)
        return IssuedToken(token, jti, expires_at)

    def decode(self, token: str, typ: TokenType) -> dict[str, Any]:
        """Claims of a valid token of type `typ`; Unauthenticated otherwise.

        A token whose signature and claims were verified before is not verified
        again (HMAC and JSON parsing were ~4 % of a small request's CPU), but its
        time window is checked on every use, so an expired token is refused at once.
        """
        claims = self._verified(token)
        now = time.time()
        if not claims["nbf"] - self.leeway <= now < claims["exp"] + self.leeway:
            raise Unauthenticated(
                "The token has expired."
                if now >= claims["exp"]
                else "The token is invalid."
            )
        if claims.get("typ") != typ:
            raise Unauthenticated("The token is invalid.")
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired.") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("The token is invalid.") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or _SUB.fullmatch(sub) is None:
            raise Unauthenticated("The token is invalid.")
        if type(claims.get("nbf")) not in (int, float) or type(
            claims.get("iat")
        ) not in (int, float):
            raise Unauthenticated("The token is invalid.")
        # an access token names its session, or it could not be ended by a logout
        if claims.get("typ") == "access" and not isinstance(claims.get("sid"), str):
            raise Unauthenticated("The token is invalid.")
        return claims


def principal_from_request(request: Request, tokens: TokenService) -> Principal | None:
    """None: no credentials (anonymous). Unauthenticated: bad credentials."""
    return principal_from_header(request.headers.get("authorization"), tokens)


def principal_from_header(header: str | None, tokens: TokenService) -> Principal | None:
    """The same, from the Authorization header's value."""
    if not header:
        return None
    if len(header) > MAX_AUTHORIZATION_BYTES:  # latin-1: one character per byte
        raise Unauthenticated("The Authorization header is too long.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <access token>'.")
    claims = tokens.decode(token.strip(), "access")
    return Principal(
        int(claims["sub"]), str(claims["jti"]), str(claims["sid"]), float(claims["iat"])
    )


__all__ = [
    "MAX_AUTHORIZATION_BYTES",
    "IssuedToken",
    "Principal",
    "TokenService",
    "TokenType",
    "principal_from_header",
    "principal_from_request",
]
