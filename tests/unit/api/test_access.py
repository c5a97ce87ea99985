"""Scopes, the key document and JWT claims: the pure rules under the scope tests over HTTP."""

from __future__ import annotations

import json

import pytest

from ragstream.access import FeedbackSigner, JwtScopes, KeyRing, Scope, claim_values, covers, under
from ragstream.errors import ConfigError
from ragstream.index import SearchFilter

SECRET = "k-0123456789abcdef-secret"


def test_prefix_rule_is_that_of_source_prefix() -> None:
    assert under("s3://b/a/x.pdf", "s3://b/a/") and under("s3://b/a/x.pdf", "s3://b/a")
    assert under("s3://b/a", "s3://b/a") and not under("s3://b/ab.pdf", "s3://b/a")
    assert (
        covers("s3://b/", "s3://b/a")
        and covers("s3://b/a", "s3://b/a/")
        and not covers("s3://b/a/", "s3://b/a")
    )


def test_a_request_filter_narrows_the_scope_never_widens_it() -> None:
    scope = Scope.of("t", ["s3://b/a/", "s3://b/c.pdf"])
    assert scope.restrict(None) == SearchFilter(allowed_prefixes=["s3://b/a/", "s3://b/c.pdf"])
    narrowed = scope.restrict(
        SearchFilter(source_prefix="s3://b/", allowed_prefixes=["s3://b/a/x/", "s3://z/"])
    )
    assert narrowed is not None and narrowed.allowed_prefixes == ["s3://b/a/x/"]
    assert narrowed.source_prefix == "s3://b/"
    assert Scope.of("t", None).restrict(None) is None


def test_listing_prefixes_stay_inside_the_scope() -> None:
    scope = Scope.of("t", ["s3://b/a/", "s3://b/c"])
    assert scope.listing(None) == ["s3://b/a/", "s3://b/c"]
    assert scope.listing("s3://b/") == ["s3://b/a/", "s3://b/c"]
    assert scope.listing("s3://b/a/deep") == ["s3://b/a/deep"]
    assert scope.listing("s3://b/c/x") == ["s3://b/c/x"]
    assert scope.listing("s3://b/cat") == []
    assert scope.listing("s3://other/") == []
    assert Scope.of("t", []).listing(None) == []


def test_key_document_binds_keys_to_prefixes() -> None:
    ring = KeyRing.parse(
        json.dumps(
            {
                "a": {"key": SECRET + "a", "prefixes": ["s3://b/a/"]},
                "ops": {"key": SECRET + "o", "prefixes": None},
                "none": {"key": SECRET + "n", "prefixes": []},
            }
        )
    )
    assert ring.authenticate(SECRET + "a") == Scope("key:a", ("s3://b/a/",))
    assert ring.authenticate(SECRET + "o") == Scope("key:ops", None)
    assert ring.authenticate(SECRET + "n") == Scope("key:none", ())
    assert ring.authenticate(SECRET) is None and ring.authenticate(None) is None
    assert KeyRing.parse("plain-key").authenticate("plain-key") == Scope("key:default", None)


@pytest.mark.parametrize(
    "document",
    [
        '{"a": {"key": "' + SECRET + '"',  # not JSON
        '{"a": {"key": "' + SECRET + '", "prefixes": ["docs/"]}}',  # not a URI
        '{"a": {"key": "' + SECRET + '", "prefixes": [], "admin": true}}',  # unknown field
        '{"a": {"key": "' + SECRET + '"}}',  # prefixes must be said, even null
        '{"a": {"key": "tiny1", "prefixes": null}}',
        '{"a": {"key": "'
        + SECRET
        + '", "prefixes": null}, "b": {"key": "'
        + SECRET
        + '", "prefixes": null}}',
        '{"a b": {"key": "' + SECRET + '", "prefixes": null}}',
        "{}",
    ],
)
def test_a_bad_key_document_is_refused_without_showing_the_key(document: str) -> None:
    with pytest.raises(ConfigError) as info:
        KeyRing.parse(document)
    assert SECRET not in str(info.value) and "tiny1" not in str(info.value)


def test_a_key_is_not_in_its_repr() -> None:
    ring = KeyRing.parse(json.dumps({"x": {"key": SECRET, "prefixes": None}}))
    assert SECRET not in repr(ring.keys)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[a b]", ["a", "b"]),
        ('["s3://b/a b/", "x"]', ["s3://b/a b/", "x"]),
        ("s3://b/a/, s3://b/c/", ["s3://b/a/", "s3://b/c/"]),
        (["g1", "g2"], ["g1", "g2"]),
        ("[]", []),
        (None, []),
    ],
)
def test_claim_values(value: object, expected: list[str]) -> None:
    assert claim_values(value) == expected


def test_jwt_claims_union_of_prefixes_and_groups() -> None:
    jwt = JwtScopes("ragstream_prefixes", "cognito:groups", {"fin": ["s3://b/fin/"], "admins": None})
    scope = jwt.scope({"sub": "u", "ragstream_prefixes": "[s3://b/a/]", "cognito:groups": "[fin x]"})
    assert scope == Scope("jwt:u", ("s3://b/a/", "s3://b/fin/"))
    assert jwt.scope({"sub": "u", "cognito:groups": "[admins]"}).unrestricted
    assert jwt.scope({"sub": "u"}).prefixes == ()


def test_feedback_tokens_are_bound_to_trace_and_scope() -> None:
    signer = FeedbackSigner(b"server secret")
    a, b = Scope.of("a", ["s3://b/a/"]), Scope.of("b", ["s3://b/b/"])
    token = signer.token("t1", a)
    assert signer.verify("t1", a, token) and signer.verify("t1", Scope.of("other key", ["s3://b/a/"]), token)
    assert not signer.verify("t1", b, token) and not signer.verify("t2", a, token)
    assert not signer.verify("t1", a, None) and not FeedbackSigner(b"another").verify("t1", a, token)
