"""API keys, access tokens and request signatures, as Deribit does them.

- ``client_credentials``: client_id + client_secret.
- ``client_signature``: signature = hex HMAC-SHA256(secret,
  ``timestamp + "\\n" + nonce + "\\n" + data``), timestamp in ms.
- HTTP header ``Authorization: deri-hmac-sha256 id=ID,ts=TS,sig=SIG,nonce=N``:
  the signed string is ``ts + "\\n" + nonce + "\\n" + RequestData`` with
  ``RequestData = UPPERCASE(http method) + "\\n" + URI + "\\n" + body + "\\n"``
  (URI is the path with its query string).
- ``Authorization: bearer TOKEN`` and ``Authorization: Basic base64(id:secret)``.

Signed requests must carry a timestamp within ``api_timestamp_window_ms`` of
the server clock and a nonce not seen before for that key inside the window.
Secrets are compared in constant time. Key records are kept in memory; the
caller persists them (``KeyStore.to_json``/``from_json``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deltasync.api import errors
from deltasync.api.errors import ApiError
from deltasync.api.params import ascii_int, utf8_text
from deltasync.core import limits

SCOPE = "connection trade:read_write account:read_write"


@dataclass(frozen=True, slots=True)
class ApiKey:
    client_id: str
    client_secret: str
    account_id: int


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and the account it trades for."""

    client_id: str
    account_id: int
    scope: str = SCOPE


def sign(secret: str, timestamp_ms: int, nonce: str, data: str) -> str:
    message = f"{timestamp_ms}\n{nonce}\n{data}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_data(http_method: str, uri: str, body: str) -> str:
    return f"{http_method.upper()}\n{uri}\n{body}\n"


def hmac_header(client_id: str, secret: str, http_method: str, uri: str, body: str,
                timestamp_ms: int, nonce: str) -> str:
    signature = sign(secret, timestamp_ms, nonce, request_data(http_method, uri, body))
    return f"deri-hmac-sha256 id={client_id},ts={timestamp_ms},sig={signature},nonce={nonce}"


# the string fields of a ``public/auth`` grant
_GRANT_TEXT = ("client_id", "client_secret", "nonce", "data", "signature", "refresh_token")

_DERIVED_ID = re.compile(r"ds([0-9]{1,9})k([0-9a-f]{8})")


class KeyStore:
    """client_id -> (secret, account).

    Keys are stored (``add``/``create``) or, with a ``master`` secret, derived:
    a derived client_id spells its account (``ds1000001k3fa2c9d1``) and its
    secret is HMAC-SHA256(master, client_id). Every node of a cluster that
    holds the cluster secret then knows every key without replicating a key
    table, so a client can fail over to any node. (Derived keys cannot be
    revoked one by one; rotating the master revokes them all.)
    """

    def __init__(self, master: bytes | None = None) -> None:
        assert master is None or len(master) >= 16, "a master secret needs 16 bytes or more"
        self._keys: dict[str, ApiKey] = {}
        self._master = master

    def create(self, account_id: int) -> ApiKey:
        if self._master is not None:
            client_id = f"ds{account_id}k{secrets.token_hex(4)}"
            key = self.get(client_id)
            assert key is not None
            return key
        key = ApiKey(
            client_id=secrets.token_urlsafe(6).replace("-", "x").replace("_", "y"),
            client_secret=secrets.token_urlsafe(32),
            account_id=account_id,
        )
        self.add(key)
        return key

    @property
    def token_secret(self) -> bytes | None:
        """With a master secret, access tokens are signed and every node accepts them."""
        if self._master is None:
            return None
        return hmac.new(self._master, b"deltasync-api-tokens", hashlib.sha256).digest()

    def add(self, key: ApiKey) -> None:
        self._keys[key.client_id] = key

    def get(self, client_id: str) -> ApiKey | None:
        key = self._keys.get(client_id)
        if key is not None or self._master is None:
            return key
        match = _DERIVED_ID.fullmatch(client_id)
        if match is None:
            return None
        secret = hmac.new(self._master, b"deltasync-api-key\0" + client_id.encode(),
                          hashlib.sha256).hexdigest()
        return ApiKey(client_id, secret, int(match.group(1)))

    def __len__(self) -> int:
        return len(self._keys)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"client_id": k.client_id, "client_secret": k.client_secret, "account_id": k.account_id}
            for k in sorted(self._keys.values(), key=lambda k: k.client_id)
        ]

    @classmethod
    def from_json(cls, records: list[dict[str, Any]]) -> KeyStore:
        store = cls()
        for record in records:
            store.add(ApiKey(str(record["client_id"]), str(record["client_secret"]),
                             int(record["account_id"])))
        return store


@dataclass(slots=True)
class _Token:
    principal: Principal
    expires_at_s: float
    refresh: bool


class Authenticator:
    """Verifies credentials and issues tokens. ``now_ms`` and ``monotonic_s``
    are injectable so tests can move the clocks."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        now_ms: Callable[[], int] | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
        token_ttl_s: int = limits.api_token_ttl_s,
        window_ms: int = limits.api_timestamp_window_ms,
        nonces_max: int = limits.api_nonces_per_key_max,
    ) -> None:
        self.keys = keys
        self.nonces_max = nonces_max
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._monotonic_s = monotonic_s
        self.token_ttl_s = token_ttl_s
        self.window_ms = window_ms
        self._tokens: dict[str, _Token] = {}
        self._tokens_by_key: dict[str, OrderedDict[str, None]] = {}
        self._nonces: dict[str, OrderedDict[str, int]] = {}
        self._logged_out_ms: dict[str, int] = {}  # signed tokens issued before are refused
        # signed refresh tokens already used, per key: token -> its expiry (s)
        self._used_refresh: dict[str, OrderedDict[str, int]] = {}

    # --- grants -------------------------------------------------------------

    def grant(self, params: dict[str, Any]) -> dict[str, Any]:
        """``public/auth``: check the grant and return fresh tokens."""
        for name in _GRANT_TEXT:
            value = params.get(name)
            if type(value) is str:
                utf8_text(name, value)  # signed, compared and MACed as UTF-8
        grant_type = params.get("grant_type")
        match grant_type:
            case "client_credentials":
                principal = self._client_credentials(params)
            case "client_signature":
                principal = self._client_signature(params)
            case "refresh_token":
                principal = self._refresh(params)
            case _:
                raise errors.invalid_param(
                    "grant_type", "must be client_credentials, client_signature or refresh_token"
                )
        return self._issue(principal)

    def _key(self, client_id: Any) -> ApiKey:
        if type(client_id) is not str or not client_id:
            raise errors.invalid_param("client_id", "value_required")
        key = self.keys.get(client_id)
        if key is None:
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "unknown client_id"})
        return key

    def _client_credentials(self, params: dict[str, Any]) -> Principal:
        key = self._key(params.get("client_id"))
        secret = params.get("client_secret")
        if type(secret) is not str or not hmac.compare_digest(
            secret.encode(), key.client_secret.encode()
        ):
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "bad client_secret"})
        return Principal(key.client_id, key.account_id)

    def _client_signature(self, params: dict[str, Any]) -> Principal:
        key = self._key(params.get("client_id"))
        timestamp = params.get("timestamp")
        if type(timestamp) is str:
            timestamp = ascii_int(timestamp)
        if type(timestamp) is not int:
            raise errors.invalid_param("timestamp", "must be an integer (ms)")
        nonce = params.get("nonce", "")
        data = params.get("data", "")
        signature = params.get("signature")
        if type(nonce) is not str or type(data) is not str or type(signature) is not str:
            raise errors.invalid_param("signature", "signature, nonce and data must be strings")
        self.verify_signature(key, timestamp, nonce, data, signature)
        return Principal(key.client_id, key.account_id)

    def _refresh(self, params: dict[str, Any]) -> Principal:
        token = params.get("refresh_token")
        if type(token) is not str:
            raise errors.invalid_param("refresh_token", "value_required")
        signed = self._verify_signed(token, "r")
        if signed is not None:
            self._use_refresh_token(signed.client_id, token)
            return signed
        record = self._tokens.get(token)
        if record is None or not record.refresh or record.expires_at_s < self._monotonic_s():
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "invalid refresh_token"})
        self._drop(token)  # a refresh token is single-use
        return record.principal

    def _use_refresh_token(self, client_id: str, token: str) -> None:
        """A signed refresh token is single use: remembered exactly until it expires (it
        is refused anyway after that), never evicted; a key whose memory is full is
        refused (10028) rather than made able to reuse an old token."""
        used = self._used_refresh.setdefault(client_id, OrderedDict())
        now_s = self._now_ms() // 1000
        while used:  # tokens expire in about the order they were used
            oldest, expires_s = next(iter(used.items()))
            if expires_s >= now_s:
                break
            del used[oldest]
        if token in used:
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "invalid refresh_token"})
        if len(used) >= limits.api_refresh_tokens_used_per_key_max:
            raise ApiError(errors.TOO_MANY_REQUESTS, {
                "reason": "too many token refreshes for this key; authenticate again later"})
        used[token] = int(token.split("~")[2])  # its expiry (s), checked by _verify_signed

    def verify_signature(
        self, key: ApiKey, timestamp_ms: int, nonce: str, data: str, signature: str
    ) -> None:
        if len(nonce) > 128 or len(signature) > 128:
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "nonce or signature too long"})
        now_ms = self._now_ms()
        if abs(now_ms - timestamp_ms) > self.window_ms:
            raise ApiError(
                errors.INVALID_CREDENTIALS,
                {"reason": "timestamp outside the window", "server_time_ms": now_ms,
                 "window_ms": self.window_ms},
            )
        expected = sign(key.client_secret, timestamp_ms, nonce, data)
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "bad signature"})
        self._use_nonce(key.client_id, f"{timestamp_ms}:{nonce}", now_ms)

    def _use_nonce(self, client_id: str, nonce: str, now_ms: int) -> None:
        """Remember ``nonce`` (``timestamp:nonce``) of a key; exact, never evicting.

        A nonce that arrived at ``seen_ms`` carries a timestamp of at most
        ``seen_ms + window``, which is refused once ``now > seen_ms + 2 * window``: only
        then is it forgotten. A key whose memory is full is refused (10028) until its
        oldest nonces expire; nothing inside the window is ever forgotten, so no signed
        request can be replayed (``limits.api_signed_requests_per_key_per_s`` fits)."""
        seen = self._nonces.setdefault(client_id, OrderedDict())
        horizon_ms = now_ms - 2 * self.window_ms
        while seen:
            oldest, seen_ms = next(iter(seen.items()))
            if seen_ms >= horizon_ms:
                break
            del seen[oldest]
        if nonce in seen:
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "nonce already used"})
        if len(seen) >= self.nonces_max:
            raise ApiError(errors.TOO_MANY_REQUESTS, {
                "reason": "too many signed requests for this key inside the timestamp window; "
                          "use an access token", "nonces_max": self.nonces_max,
                "window_ms": self.window_ms})
        seen[nonce] = now_ms

    # --- tokens ---------------------------------------------------------------

    def _issue(self, principal: Principal) -> dict[str, Any]:
        if self.keys.token_secret is not None:
            now_ms = self._now_ms()
            expires_s = now_ms // 1000 + self.token_ttl_s
            access = self._signed(principal.client_id, now_ms, expires_s, "a")
            refresh = self._signed(principal.client_id, now_ms, expires_s + 29 * self.token_ttl_s,
                                   "r")
        else:
            access = secrets.token_urlsafe(24)
            refresh = secrets.token_urlsafe(24)
            mono_s = self._monotonic_s()
            self._store(access, _Token(principal, mono_s + self.token_ttl_s, refresh=False))
            self._store(refresh, _Token(principal, mono_s + 30 * self.token_ttl_s, refresh=True))
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.token_ttl_s,
            "scope": principal.scope,
            "token_type": "bearer",
            "enabled_features": [],
        }

    # Signed tokens (a cluster: KeyStore with a master secret) are
    # ``client_id~issued_ms~expires_s~kind~nonce~mac``; any node verifies them, so a
    # client keeps its token when it fails over. Logout and single use of refresh
    # tokens are enforced by the node that sees them (each node keeps its own list).

    def _signed(self, client_id: str, issued_ms: int, expires_s: int, kind: str) -> str:
        body = f"{client_id}~{issued_ms}~{expires_s}~{kind}~{secrets.token_hex(6)}"
        return f"{body}~{self._mac(body)}"

    def _mac(self, body: str) -> str:
        secret = self.keys.token_secret
        assert secret is not None
        return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def _verify_signed(self, token: str, kind: str) -> Principal | None:
        """The principal of a valid signed token of ``kind``; None if it is not one."""
        if self.keys.token_secret is None or token.count("~") != 5 or len(token) > 200:
            return None
        body, _, mac = token.rpartition("~")
        if not hmac.compare_digest(self._mac(body), mac):
            return None
        client_id, issued, expires, token_kind, _ = body.split("~")
        issued_ms, expires_s = ascii_int(issued), ascii_int(expires)
        if issued_ms is None or expires_s is None or token_kind != kind:
            return None
        if expires_s < self._now_ms() // 1000:
            raise ApiError(errors.UNAUTHORIZED, {"reason": "token_expired"})
        if issued_ms <= self._logged_out_ms.get(client_id, -1):
            return None
        key = self.keys.get(client_id)
        return None if key is None else Principal(key.client_id, key.account_id)

    def _store(self, token: str, record: _Token) -> None:
        owned = self._tokens_by_key.setdefault(record.principal.client_id, OrderedDict())
        while len(owned) >= limits.api_tokens_per_key_max:
            oldest = next(iter(owned))
            self._drop(oldest)
        owned[token] = None
        self._tokens[token] = record

    def _drop(self, token: str) -> None:
        record = self._tokens.pop(token, None)
        if record is not None:
            self._tokens_by_key.get(record.principal.client_id, OrderedDict()).pop(token, None)

    def bearer(self, token: str) -> Principal:
        signed = self._verify_signed(token, "a")
        if signed is not None:
            return signed
        record = self._tokens.get(token)
        if record is None or record.refresh:
            raise ApiError(errors.UNAUTHORIZED, {"reason": "invalid_token"})
        if record.expires_at_s < self._monotonic_s():
            self._drop(token)
            raise ApiError(errors.UNAUTHORIZED, {"reason": "token_expired"})
        return record.principal

    def logout(self, principal: Principal) -> None:
        for token in list(self._tokens_by_key.get(principal.client_id, ())):
            self._drop(token)
        if self.keys.token_secret is not None:  # signed tokens issued until now stop working here
            self._logged_out_ms[principal.client_id] = self._now_ms()
            while len(self._logged_out_ms) > limits.api_nonces_per_key_max:
                self._logged_out_ms.pop(next(iter(self._logged_out_ms)))

    # --- HTTP Authorization header ---------------------------------------------

    def http_header(self, header: str, http_method: str, uri: str, body: str) -> Principal:
        if not header.isascii():  # credentials, tokens and signatures are ASCII
            raise ApiError(errors.INVALID_CREDENTIALS,
                           {"reason": "the Authorization header must be ASCII"})
        scheme, _, rest = header.strip().partition(" ")
        match scheme.lower():
            case "bearer":
                return self.bearer(rest.strip())
            case "basic":
                return self._basic(rest.strip())
            case "deri-hmac-sha256":
                return self._hmac(rest, http_method, uri, body)
        raise ApiError(errors.INVALID_CREDENTIALS, {"reason": f"unsupported scheme {scheme[:32]!r}"})

    def _basic(self, encoded: str) -> Principal:
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, ValueError):  # ValueError covers UnicodeDecodeError
            raise ApiError(errors.INVALID_CREDENTIALS, {"reason": "malformed basic credentials"}) from None
        return self._client_credentials({"client_id": client_id, "client_secret": secret})

    def _hmac(self, fields_text: str, http_method: str, uri: str, body: str) -> Principal:
        fields: dict[str, str] = {}
        for part in fields_text.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields[name.strip()] = value.strip()
        missing = [name for name in ("id", "ts", "sig", "nonce") if name not in fields]
        timestamp_ms = ascii_int(fields.get("ts", ""))
        if missing or timestamp_ms is None:
            raise ApiError(
                errors.INVALID_CREDENTIALS,
                {"reason": "Authorization needs id, ts (ms), sig and nonce", "missing": missing},
            )
        key = self._key(fields["id"])
        self.verify_signature(
            key, timestamp_ms, fields["nonce"], request_data(http_method, uri, body),
            fields["sig"],
        )
        return Principal(key.client_id, key.account_id)
