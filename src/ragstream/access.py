"""Who may read what: API keys and JWT claims become a :class:`Scope` of source prefixes.

A scope is a set of source prefixes, with the rule of ``SearchFilter.source_prefix``: a prefix that
ends in ``/`` is a folder (``s3://docs/finance/``), any other is one exact source or the folder of
that name. The core ANDs the caller's scope into every read (search, answers and their citations,
the ledger and its cursor, feedback); a request's own filter can narrow it, never widen it.

Where scopes come from:

- **API keys** (``x-api-key``). The API-key secret holds either one key (every caller sees every
  document, as before) or a JSON document naming several, each bound to its prefixes::

      {"finance": {"key": "…", "prefixes": ["s3://docs/finance/"]},
       "ops":     {"key": "…", "prefixes": null}}

  ``null`` prefixes mean unrestricted. The document comes from ``RAGSTREAM_API_KEY`` (or its SSM /
  Secrets Manager ``_PARAMETER``), or locally from the file ``RAGSTREAM_API_KEYS_FILE``. A key is
  compared with every configured key in constant time and is never logged.
- **JWT** (``RAGSTREAM_AUTH=jwt``, behind the HTTP API's JWT authorizer, which verifies the token):
  the claims in ``requestContext.authorizer.jwt.claims`` give the prefixes, from a claim holding
  them (``RAGSTREAM_JWT_PREFIXES_CLAIM``) and from groups mapped to prefixes
  (``RAGSTREAM_JWT_GROUPS_CLAIM`` + ``RAGSTREAM_JWT_GROUP_PREFIXES``). No prefix: nothing is visible.

Feedback on an answer needs the answer's ``feedback_token``, an HMAC of its trace id and the
scope that asked (see :class:`FeedbackSigner`), so that a caller can only score traces of its scope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .index import SearchFilter

if TYPE_CHECKING:
    from .config import Settings
    from .ledger import Ledger
    from .model import DocumentRecord, Status

__all__ = [
    "ApiKey",
    "Authenticator",
    "FeedbackSigner",
    "KeyRing",
    "Scope",
    "covers",
    "list_in_scope",
    "under",
]

log = logging.getLogger(__name__)

#: At most this many prefixes per key or token (a filter of that many ORs stays cheap).
MAX_PREFIXES = 100


def under(source: str, prefix: str) -> bool:
    """Whether ``source`` is under ``prefix``: a folder (``.../``), or that source or its folder."""
    if prefix.endswith("/"):
        return source.startswith(prefix)
    return source == prefix or source.startswith(prefix + "/")


def covers(outer: str, inner: str) -> bool:
    """Whether every source under ``inner`` is also under ``outer``."""
    return under(inner, outer) or (not outer.endswith("/") and inner == outer + "/")


def _minimal(prefixes: Iterable[str]) -> tuple[str, ...]:
    """The prefixes without duplicates or any one another covers, sorted."""
    unique = sorted(set(prefixes))
    return tuple(p for p in unique if not any(q != p and covers(q, p) for q in unique))


@dataclass(frozen=True)
class Scope:
    """The sources one caller may read. ``prefixes`` None: everything; empty: nothing."""

    principal: str
    prefixes: tuple[str, ...] | None = None

    @classmethod
    def of(cls, principal: str, prefixes: Iterable[str] | None) -> Scope:
        """A scope over ``prefixes`` (None: unrestricted), normalised."""
        return cls(principal, None if prefixes is None else _minimal(prefixes))

    @property
    def unrestricted(self) -> bool:
        return self.prefixes is None

    def allows(self, source: str) -> bool:
        """Whether ``source`` is in the scope."""
        return self.prefixes is None or any(under(source, p) for p in self.prefixes)

    @property
    def fingerprint(self) -> str:
        """A canonical text of the prefixes: two callers with the same fingerprint see the same sources."""
        return "*" if self.prefixes is None else "\n".join(self.prefixes)

    def restrict(self, flt: SearchFilter | None) -> SearchFilter | None:
        """``flt`` ANDed with this scope: ``allowed_prefixes`` set to the intersection."""
        if self.prefixes is None:
            return flt
        base = flt if flt is not None else SearchFilter()
        allowed = self.prefixes
        if base.allowed_prefixes is not None:
            allowed = _intersection(allowed, base.allowed_prefixes)
        return base.model_copy(update={"allowed_prefixes": list(allowed)})

    def listing(self, prefix: str | None) -> list[str | None]:
        """The ledger prefixes to list for a request's ``prefix``, each inside this scope.

        Unrestricted: the request's prefix itself. Otherwise every scope prefix under the request's
        prefix, or the request's prefix where one scope prefix holds it; ``[]`` when they are disjoint.
        """
        if self.prefixes is None:
            return [prefix]
        if not prefix:
            return list(self.prefixes)
        out: list[str | None] = []
        for p in self.prefixes:
            if _holds(p, prefix):
                return [prefix]
            if prefix and p.startswith(prefix):
                out.append(p)
        return out


def _holds(scope_prefix: str, listing_prefix: str) -> bool:
    """Whether every source that starts with the text ``listing_prefix`` is under ``scope_prefix``."""
    if scope_prefix.endswith("/"):
        return listing_prefix.startswith(scope_prefix)
    return listing_prefix.startswith(scope_prefix + "/")


def _intersection(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
    """The prefixes of the sources under both ``a`` and ``b`` (prefix sets are nested or disjoint)."""
    a, b = tuple(a), tuple(b)
    return _minimal(
        [p for p in a if any(covers(q, p) for q in b)] + [q for q in b if any(covers(p, q) for p in a)]
    )


# -- API keys ------------------------------------------------------------------------------------------

_KEY_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=16, max_length=512)
    prefixes: list[str] | None = Field(max_length=MAX_PREFIXES)


@dataclass(frozen=True)
class ApiKey:
    """One key of the key ring: its id (for logs and traces), secret and scope."""

    key_id: str
    secret: bytes
    prefixes: tuple[str, ...] | None

    def __repr__(self) -> str:  # never the secret
        return f"ApiKey(key_id={self.key_id!r}, prefixes={self.prefixes!r})"


class KeyRing:
    """The configured API keys. ``authenticate`` compares a presented key with each in constant time."""

    def __init__(self, keys: Iterable[ApiKey]):
        self.keys = tuple(keys)
        if not self.keys:
            raise ConfigError("the API key document names no key")
        if len({k.secret for k in self.keys}) != len(self.keys):
            raise ConfigError("two API keys of the key document are the same: give each its own")

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """One plain key (unscoped, id ``default``) or a JSON document ``{id: {key, prefixes}}``."""
        text = text.strip()
        if not text.startswith("{"):
            return cls([ApiKey("default", text.encode("utf-8"), None)])
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:  # the position only: the text holds secrets
            raise ConfigError(f"the API key document is not valid JSON (at character {exc.pos})") from None
        if not isinstance(document, dict):
            raise ConfigError("the API key document must be a JSON object {key_id: {key, prefixes}}")
        keys = []
        for key_id, entry in document.items():
            if not _KEY_ID.match(key_id):
                raise ConfigError("API key ids are 1-64 letters, digits, '.', '_' or '-'")
            try:
                parsed = _KeyEntry.model_validate(entry)
            except ValidationError as exc:  # never the input: it is the key
                where = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['type']}" for e in exc.errors()
                )
                raise ConfigError(
                    f'API key {key_id!r}: {where} (each entry is {{"key": at least 16 characters, '
                    '"prefixes": ["s3://bucket/folder/", ...] or null}})'
                ) from None
            if parsed.prefixes is not None:
                for prefix in parsed.prefixes:
                    if "://" not in prefix:
                        raise ConfigError(
                            f"API key {key_id!r}: prefix {prefix!r} is not a source URI (s3://bucket/folder/)"
                        )
            scope = None if parsed.prefixes is None else tuple(parsed.prefixes)
            keys.append(ApiKey(key_id, parsed.key.encode("utf-8"), scope))
        return cls(keys)

    def authenticate(self, given: str | None) -> Scope | None:
        """The scope of the key ``given``, or None. Every key is compared, each in constant time."""
        if given is None:
            return None
        sent = given.encode("utf-8", "surrogatepass")
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(sent, key.secret) and found is None:
                found = key
        if found is None:
            return None
        return Scope.of(f"key:{found.key_id}", found.prefixes)

    @property
    def material(self) -> bytes:
        """Bytes only the server knows, to derive other secrets from (the feedback key)."""
        return b"\0".join(k.key_id.encode() + b"=" + k.secret for k in self.keys)


# -- JWT claims -------------------------------------------------------------------------------------------


def claim_values(value: Any) -> list[str]:
    """A claim as a list of strings. API Gateway passes claims as text, arrays as ``[a b c]``;
    a JSON array, or text separated by spaces or commas, are read too."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v)]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            text = text[1:-1] if text.endswith("]") else text[1:]
        else:
            return claim_values(parsed) if isinstance(parsed, list) else [str(parsed)]
    return [part for part in re.split(r"[\s,]+", text) if part]


@dataclass(frozen=True)
class JwtScopes:
    """Maps the verified claims of a JWT to a scope."""

    prefixes_claim: str
    groups_claim: str
    group_prefixes: Mapping[str, list[str] | None]

    def scope(self, claims: Mapping[str, Any]) -> Scope:
        """The union of the prefixes claim and the groups' prefixes (a group mapped to null: all)."""
        principal = f"jwt:{claims.get('sub') or claims.get('client_id') or 'unknown'}"
        prefixes = [p for p in claim_values(claims.get(self.prefixes_claim)) if "://" in p]
        for group in claim_values(claims.get(self.groups_claim)):
            if group not in self.group_prefixes:
                continue
            mapped = self.group_prefixes[group]
            if mapped is None:
                return Scope.of(principal, None)
            prefixes.extend(mapped)
        return Scope.of(principal, prefixes[:MAX_PREFIXES])


def _claims(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") if isinstance(authorizer, Mapping) else None
    return claims if isinstance(claims, Mapping) else None


# -- the authenticator -------------------------------------------------------------------------------------


class Authenticator:
    """Turns a request (its API key header, or its verified JWT claims) into a Scope, or None (401)."""

    def __init__(self, keys: KeyRing | None = None, jwt: JwtScopes | None = None):
        self.keys = keys
        self.jwt = jwt

    @property
    def open(self) -> bool:
        """Nothing configured: every caller is unrestricted (local use)."""
        return self.keys is None and self.jwt is None

    def scope(self, event: Mapping[str, Any], api_key: str | None) -> Scope | None:
        """The caller's scope, or None when the request is not authenticated."""
        if self.jwt is not None:
            claims = _claims(event)
            # Only API Gateway's JWT authorizer writes these claims; without them, nobody verified a token.
            return self.jwt.scope(claims) if claims is not None else None
        if self.keys is not None:
            return self.keys.authenticate(api_key)
        return Scope.of("anonymous", None)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        if settings.auth == "jwt":
            return cls(
                jwt=JwtScopes(
                    prefixes_claim=settings.jwt_prefixes_claim,
                    groups_claim=settings.jwt_groups_claim,
                    group_prefixes=dict(settings.jwt_group_prefixes),
                )
            )
        document = settings.api_key_document()
        return cls(keys=KeyRing.parse(document) if document else None)


# -- feedback tokens ---------------------------------------------------------------------------------------


class FeedbackSigner:
    """``feedback_token`` = HMAC-SHA256(server secret, trace id + scope fingerprint), base64url.

    An answer carries the token of its trace and of the scope that asked. ``POST /feedback`` from a
    restricted caller needs a token that verifies for its own scope: a trace id seen elsewhere (a
    log, another team's answer) cannot be scored. Nothing is stored and Langfuse is not asked.
    """

    def __init__(self, secret: bytes):
        self._key = hashlib.sha256(b"ragstream feedback token\0" + secret).digest()

    @classmethod
    def from_settings(cls, settings: Settings, auth: Authenticator) -> FeedbackSigner:
        """From RAGSTREAM_FEEDBACK_SECRET, else the API-key secret (also behind a JWT authorizer, where
        it signs nothing else), else random per process (tokens then hold within one process only)."""
        if settings.feedback_secret is not None:
            return cls(settings.feedback_secret.get_secret_value().encode())
        if auth.keys is not None:
            return cls(auth.keys.material)
        document = settings.api_key_document()
        if document:
            return cls(document.encode("utf-8"))
        if not auth.open:
            log.warning(
                "no RAGSTREAM_FEEDBACK_SECRET nor API key: feedback tokens are valid in this process only"
            )
        return cls(secrets.token_bytes(32))

    def token(self, trace_id: str, scope: Scope) -> str:
        mac = hmac.new(self._key, f"{trace_id}\n{scope.fingerprint}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, trace_id: str, scope: Scope, token: str | None) -> bool:
        """Whether ``token`` was issued for ``trace_id`` to a caller of this scope (constant time)."""
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self.token(trace_id, scope).encode())


# -- the ledger, within a scope ----------------------------------------------------------------------------


def list_in_scope(
    ledger: Ledger,
    scope: Scope,
    *,
    status: Status | None = None,
    prefix: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[DocumentRecord], str | None]:
    """One page of the ledger records ``scope`` may read, filtered like :meth:`Ledger.list`.

    Unrestricted: the ledger's own page and cursor. Restricted: the scope's prefixes (those inside
    the request's ``prefix``) are listed one after the other; the cursor names which one and the
    ledger's cursor within it. Each listing is bounded by its prefix in the ledger's own query, and
    every record is checked against the scope again, so a crafted cursor (another prefix's source,
    another listing) can only move within the caller's own records. A cursor of another shape
    raises ValueError. A page may hold fewer than ``limit`` records while the cursor is not None.
    """
    if scope.unrestricted:
        return ledger.list(status=status, prefix=prefix, limit=limit, cursor=cursor)
    listings = scope.listing(prefix)
    index, inner = _decode_scoped_cursor(cursor) if cursor else (0, None)
    if not listings:
        if cursor:
            raise ValueError("invalid cursor")
        return [], None
    if index >= len(listings):
        raise ValueError("invalid cursor")
    records, inner_next = ledger.list(status=status, prefix=listings[index], limit=limit, cursor=inner)
    kept = [r for r in records if scope.allows(r.source) and (not prefix or r.source.startswith(prefix))]
    if inner_next is not None:
        return kept, _encode_scoped_cursor(index, inner_next)
    if index + 1 < len(listings):
        return kept, _encode_scoped_cursor(index + 1, None)
    return kept, None


_CURSOR_MARK = "s1."


def _encode_scoped_cursor(index: int, inner: str | None) -> str:
    raw = json.dumps([index, inner], separators=(",", ":")).encode()
    return _CURSOR_MARK + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_scoped_cursor(cursor: str) -> tuple[int, str | None]:
    if not cursor.startswith(_CURSOR_MARK):
        raise ValueError("invalid cursor")
    body = cursor[len(_CURSOR_MARK) :]
    try:
        index, inner = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        raise ValueError("invalid cursor") from None
    if not isinstance(index, int) or index < 0 or not (inner is None or isinstance(inner, str)):
        raise ValueError("invalid cursor")
    return index, inner
