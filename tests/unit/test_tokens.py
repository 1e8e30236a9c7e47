"""Token attacks, no sockets: every forged or misused token is refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from permauth.tokens import MAX_AUTHORIZATION_BYTES, TokenService, principal_from_header
from permbase.errors import Unauthenticated
from permbase.settings import Settings

SECRET = "unit-test-secret-" + "y" * 60


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", jwt_secret=SECRET)


@pytest.fixture
def tokens(settings: Settings) -> TokenService:
    return TokenService(settings)


def _claims(**over: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "7",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "aud": "permgraph",
        "iss": "permgraph",
        "jti": "x",
        "typ": "access",
        "sid": "s",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def test_round_trip(tokens: TokenService) -> None:
    issued = tokens.issue(7, "access")
    claims = tokens.decode(issued.token, "access")
    assert claims["sub"] == "7" and claims["typ"] == "access"
    assert "permissions" not in claims and "roles" not in claims


def test_access_tokens_name_their_session_and_carry_a_precise_iat(
    tokens: TokenService,
) -> None:
    now = datetime.now(UTC).replace(microsecond=678901) - timedelta(seconds=1)
    claims = tokens._verify(tokens.issue(7, "access", family_id="fam-1", now=now).token)
    assert claims["sid"] == "fam-1"
    # to the microsecond: a token issued just after a password change is not older than it
    assert claims["iat"] == now.timestamp()
    # without a family (not a login): a session of its own, which nothing else shares
    a, b = (tokens._verify(tokens.issue(7, "access").token)["sid"] for _ in range(2))
    assert a != b


def test_a_principal_carries_the_session_and_the_issue_time(
    tokens: TokenService,
) -> None:
    issued = tokens.issue(7, "access", family_id="fam-2")
    principal = principal_from_header(f"Bearer {issued.token}", tokens)
    assert principal is not None
    assert (principal.user_id, principal.session_id) == (7, "fam-2")
    assert principal.issued_at == tokens.decode(issued.token, "access")["iat"]


def test_an_oversized_authorization_header_is_refused_before_decoding(
    tokens: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tokens.issue(7, "access").token
    padded = f"Bearer {token}" + " " * (MAX_AUTHORIZATION_BYTES - len(token) - 7)
    assert len(padded) == MAX_AUTHORIZATION_BYTES
    assert principal_from_header(padded, tokens) is not None  # at the cap: still read
    decoded: list[str] = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append("x"))
    monkeypatch.setattr(
        tokens, "_verified", tokens._verify
    )  # no memo: a decode would show
    with pytest.raises(Unauthenticated, match="too long"):
        principal_from_header(padded + " ", tokens)
    assert decoded == []


def _b64(data: dict[str, object]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(data, default=str).encode())
        .rstrip(b"=")
        .decode()
    )


def test_alg_none_is_refused(tokens: TokenService) -> None:
    claims = _claims()
    body = {
        k: int(v.timestamp()) if isinstance(v, datetime) else v
        for k, v in claims.items()
    }
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(body)}."
    with pytest.raises(Unauthenticated):
        tokens.decode(forged, "access")


def test_swapped_algorithm_is_refused(tokens: TokenService) -> None:
    # signed with the right secret but another HMAC algorithm than configured
    forged = jwt.encode(_claims(), SECRET, algorithm="HS512")
    with pytest.raises(Unauthenticated):
        tokens.decode(forged, "access")
    # an RS256 token with our own key: the algorithm list does not admit it
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(Unauthenticated):
        tokens.decode(jwt.encode(_claims(), pem, algorithm="RS256"), "access")


@pytest.mark.parametrize(
    "over",
    [
        {"exp": timedelta(minutes=-1)},  # expired beyond the leeway (from now)
        {"nbf": timedelta(minutes=5)},  # not yet valid (from now)
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"typ": "refresh"},  # a refresh token as an access token
        {"sub": None},
        {"exp": None},
        {"iat": None},
        {"jti": None},
        {"typ": None},
        {"sub": "admin"},
        {"sub": "١٢"},  # Arabic-Indic digits: isdigit() is True, int() is 12
        {"sub": "１２"},  # noqa: RUF001 - fullwidth digits
        {"sub": "1" * 19},  # beyond a bigint
        {"sub": " 12"},
        {"sid": None},  # an access token without its session
        {"sid": 7},
        {"iat": "yesterday"},
    ],
)
def test_bad_claims_are_refused(tokens: TokenService, over: dict[str, object]) -> None:
    # times are offsets from now, taken when the test runs (not when it is collected)
    now = datetime.now(UTC)
    claims = {k: now + v if isinstance(v, timedelta) else v for k, v in over.items()}
    with pytest.raises(Unauthenticated):
        tokens.decode(
            jwt.encode(_claims(**claims), SECRET, algorithm="HS256"), "access"
        )


def test_wrong_secret_is_refused(tokens: TokenService) -> None:
    with pytest.raises(Unauthenticated):
        tokens.decode(
            jwt.encode(_claims(), "another-secret-" + "z" * 60, algorithm="HS256"),
            "access",
        )


def test_leeway_tolerates_small_clock_skew(tokens: TokenService) -> None:
    token = jwt.encode(
        _claims(nbf=datetime.now(UTC) + timedelta(seconds=3)), SECRET, algorithm="HS256"
    )
    assert tokens.decode(token, "access")["sub"] == "7"


def test_refresh_token_is_not_an_access_token(tokens: TokenService) -> None:
    refresh = tokens.issue(7, "refresh", family_id="f")
    with pytest.raises(Unauthenticated):
        tokens.decode(refresh.token, "access")
    assert tokens.decode(refresh.token, "refresh")["fam"] == "f"


def test_asymmetric_option(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "k.pem"
    public = tmp_path / "k.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    service = TokenService(
        Settings(
            environment="prod",
            jwt_algorithm="RS256",
            jwt_private_key_file=str(private),
            jwt_public_key_file=str(public),
        )
    )
    token = service.issue(3, "access").token
    assert service.decode(token, "access")["sub"] == "3"
    # HS256 signed with the public key as the secret (the classic key-confusion attack)
    forged = jwt.encode(_claims(), "x" * 40, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        service.decode(forged, "access")


def test_settings_refuse_weak_secrets_outside_dev() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(environment="prod", jwt_secret="short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(environment="test", jwt_secret="changethis")
    with pytest.raises(ValueError, match="KEY_FILE"):
        Settings(environment="prod", jwt_algorithm="RS256")
    assert Settings(environment="dev").jwt_secret.get_secret_value() == ""


def test_a_token_verified_before_is_still_refused_once_it_expires() -> None:
    service = TokenService(
        Settings(environment="test", jwt_secret=SECRET, jwt_leeway_s=0)
    )
    almost = datetime.now(UTC) - timedelta(
        seconds=service.ttl["access"].total_seconds() - 1
    )
    token = service.issue(9, "access", now=almost).token
    assert service.decode(token, "access")["sub"] == "9"  # verified, and remembered
    time.sleep(1.1)
    with pytest.raises(Unauthenticated, match="expired"):
        service.decode(token, "access")
    with pytest.raises(
        Unauthenticated
    ):  # the remembered claims do not change the type check
        service.decode(service.issue(9, "access").token, "refresh")
