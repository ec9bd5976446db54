"""The auth endpoint's pure parts: the route table, the original request, the Bearer token."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz.check import bearer_token
from authz.original import Original, normalize_path, original_request
from authz.routes import Route, RouteTable, RouteTableError, load_routes
from tests.authz import ROUTES


@pytest.fixture
def shipped() -> RouteTable:
    return load_routes(ROUTES)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/entities", "entities:read"),
        ("GET", "/api/entities/42", "entities:read"),
        ("HEAD", "/api/entities/42/", "entities:read"),
        ("POST", "/api/entities", "entities:write"),
        ("DELETE", "/api/entities/42", "entities:write"),
        ("GET", "/api/reports/2026", "reports:read"),
        ("PATCH", "/api/admin/anything", "entities:admin"),
    ],
)
def test_the_shipped_routes_give_each_request_its_scope(
    shipped: RouteTable, method: str, path: str, scope: str
) -> None:
    assert shipped.scope_for(method, path) == scope


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api"),
        ("GET", "/api/entities-admin"),  # a prefix matches whole segments only
        ("OPTIONS", "/api/entities"),  # the prefix lists methods, not this one
        ("PUT", "/api/reports/1"),
    ],
)
def test_a_request_no_route_covers_is_refused(shipped: RouteTable, method: str, path: str) -> None:
    assert shipped.scope_for(method, path) is None


def test_the_longest_prefix_wins_and_a_broader_one_never_stands_in_for_it() -> None:
    table = RouteTable(
        [
            Route("/", "reports:read"),
            Route("/api/entities", "entities:read", ("GET",)),
            Route("/api/entities/secret", "entities:admin"),
        ]
    )
    assert table.scope_for("GET", "/anything") == "reports:read"
    assert table.scope_for("GET", "/api/entities/1") == "entities:read"
    assert table.scope_for("GET", "/api/entities/secret/1") == "entities:admin"
    # /api/entities lists GET only: a POST there is refused, not handed to "/".
    assert table.scope_for("POST", "/api/entities/1") is None


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('[[route]]\nprefix = "api"\nscope = "entities:read"\n', "prefix"),
        ('[[route]]\nprefix = "/api"\nscope = "entities"\n', "scope"),
        ('[[route]]\nprefix = "/api"\nscope = "entities:read"\nmethods = "GET"\n', "methods"),
        ('[[route]]\nprefix = "/api"\nscope = "entities:read"\nscopes = []\n', "unknown"),
        ('[[routes]]\nprefix = "/api"\nscope = "entities:read"\n', "unknown"),
        (
            '[[route]]\nprefix = "/a"\nscope = "a:read"\n'
            '[[route]]\nprefix = "/a/"\nscope = "b:read"\n',
            "two routes",
        ),
        ("not toml [", "Expected"),
    ],
)
def test_a_route_table_that_cannot_be_trusted_is_refused_at_start(
    tmp_path: Path, text: str, fault: str
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    with pytest.raises(RouteTableError, match=fault):
        load_routes(path)


def test_no_route_table_refuses_everything() -> None:
    assert load_routes(None).scope_for("GET", "/") is None


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/api/entities?limit=5", "/api/entities"),
        ("/api/reports/../entities/1", "/api/entities/1"),
        ("/api/reports/%2e%2E/entities", "/api/entities"),
        ("/api//entities/./1/", "/api/entities/1/"),
        ("/%61pi/entities", "/api/entities"),
        ("/..", "/"),
        ("/api/%20x", "/api/%20x"),
    ],
)
def test_paths_are_read_as_an_upstream_would(target: str, path: str) -> None:
    assert normalize_path(target) == path


@pytest.mark.parametrize(
    "target",
    [
        "api/entities",
        "http://host/api",
        "/api/entities%2Fsecret",
        "/api\\entities",
        "/api/%5centities",
        "/public/..;/admin",
        "/api/%zz",
        "/api/%00",
        "/a b",
        "/a\tb",
    ],
)
def test_paths_servers_disagree_on_are_refused(target: str) -> None:
    assert normalize_path(target) is None


def test_nginx_and_traefik_say_the_request_in_headers() -> None:
    nginx = {"x-original-uri": "/api/entities", "x-original-method": "get"}
    traefik = {"x-forwarded-uri": "/api/entities", "x-forwarded-method": "POST"}
    assert original_request("GET", "/check", nginx, "/check") == Original("GET", "/api/entities")
    assert original_request("GET", "/check", traefik, "/check") == Original("POST", "/api/entities")


def test_envoy_says_it_in_the_path_after_the_prefix() -> None:
    assert original_request("DELETE", "/check/api/x?y=1", {}, "/check") == Original(
        "DELETE", "/api/x"
    )
    assert original_request("GET", "/check/", {}, "/check") == Original("GET", "/")


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        # a client's own X-Original-URI beside what Traefik says
        (
            "GET",
            "/check",
            {
                "x-original-uri": "/public",
                "x-forwarded-uri": "/api/admin",
                "x-forwarded-method": "GET",
            },
        ),
        (
            "GET",
            "/check",
            {"x-original-uri": "/a", "x-original-method": "GET", "x-forwarded-method": "POST"},
        ),
        # Envoy's path and a header that says otherwise
        ("GET", "/check/api/admin", {"x-original-uri": "/public"}),
        ("GET", "/check/api/admin", {"x-forwarded-method": "HEAD"}),
        # a URI without its method, or nothing at all
        ("GET", "/check", {"x-original-uri": "/a"}),
        ("GET", "/check", {}),
        # not under the prefix
        ("GET", "/checkpoint/a", {}),
        ("GET", "/other", {"x-original-uri": "/a", "x-original-method": "GET"}),
        # a repeated header, combined by the server
        ("GET", "/check", {"x-original-uri": "/a, /b", "x-original-method": "GET"}),
        ("GET", "/check", {"x-original-uri": "/a", "x-original-method": "GET, POST"}),
    ],
)
def test_a_request_whose_sources_disagree_or_are_missing_is_not_trusted(
    method: str, target: str, headers: dict[str, str]
) -> None:
    assert original_request(method, target, headers, "/check") is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer tok_abc", "tok_abc"),
        ("bearer   tok_abc ", "tok_abc"),
        ("Bearer", ""),
        ("Bearer a b", "a b"),
    ],
)
def test_the_bearer_token_is_taken_as_rfc_6750_says(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
