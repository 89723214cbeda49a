"""Every bad parameter -> 400 in the one JSON error shape, naming the parameter; Sanic's own
errors (404 unknown route, 405, oversized headers) in the same shape; never a stack trace."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import ApiServer

CASES = [
    # (path, query, parameter named, code)
    ("/api/v1/catalog", "page=0", "page", "invalid_parameter"),
    ("/api/v1/catalog", "page=-1", "page", "invalid_parameter"),
    ("/api/v1/catalog", "page=abc", "page", "invalid_parameter"),
    ("/api/v1/catalog", "page=1.5", "page", "invalid_parameter"),
    ("/api/v1/catalog", "page=100001", "page", "invalid_parameter"),
    ("/api/v1/catalog", "page=99999999999999999999", "page", "invalid_parameter"),
    ("/api/v1/catalog", "page_size=0", "page_size", "invalid_parameter"),
    ("/api/v1/catalog", "page_size=101", "page_size", "invalid_parameter"),
    ("/api/v1/catalog", "availability=soon", "availability", "invalid_parameter"),
    ("/api/v1/catalog", "min_price=-1", "min_price", "invalid_parameter"),
    ("/api/v1/catalog", "min_price=abc", "min_price", "invalid_parameter"),
    ("/api/v1/catalog", "min_price=1.234", "min_price", "invalid_parameter"),
    ("/api/v1/catalog", "max_price=NaN", "max_price", "invalid_parameter"),
    ("/api/v1/catalog", "max_price=1e5", "max_price", "invalid_parameter"),
    ("/api/v1/catalog", "min_price=500&max_price=100", "min_price", "invalid_parameter"),
    ("/api/v1/catalog", "q=" + "a" * 101, "q", "invalid_parameter"),
    ("/api/v1/catalog", "q=a%00b", "q", "invalid_parameter"),
    ("/api/v1/catalog", "sort=cheapest", "sort", "invalid_parameter"),
    ("/api/v1/catalog", "categories=" + ",".join(f"c{i}" for i in range(21)), "categories",
     "invalid_parameter"),
    ("/api/v1/catalog", "categories=" + "x" * 101, "categories", "invalid_parameter"),
    ("/api/v1/catalog", "page=1&page=2", "page", "repeated_parameter"),
    ("/api/v1/catalog", "pagesize=10", "pagesize", "unknown_parameter"),
    ("/api/v1/search/suggest", "", "q", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=", "q", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=%20%20%20", "q", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=" + "b" * 101, "q", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=ab&limit=0", "limit", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=ab&limit=21", "limit", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=ab&availability=x", "availability", "invalid_parameter"),
    ("/api/v1/search/suggest", "q=ab&page=2", "page", "unknown_parameter"),
    ("/api/v1/snapshots/recent", "limit=0", "limit", "invalid_parameter"),
    ("/api/v1/snapshots/recent", "limit=501", "limit", "invalid_parameter"),
    ("/api/v1/snapshots/recent", "limit=1&limit=2", "limit", "repeated_parameter"),
    ("/api/v1/meta/categories", "x=1", "x", "unknown_parameter"),
    ("/api/v1/products/Osadnici", "", "slug", "invalid_parameter"),
    ("/api/v1/products/osadnici_z_katanu", "", "slug", "invalid_parameter"),
    ("/api/v1/products/" + "a" * 201, "", "slug", "invalid_parameter"),
    ("/api/v1/products/osadnici-z-katanu", "full=1", "full", "unknown_parameter"),
]


@pytest.mark.parametrize(("path", "query", "parameter", "code"), CASES)
def test_bad_parameter_is_400_naming_it(
    api: ApiServer, path: str, query: str, parameter: str, code: str
) -> None:
    r = api.get(path + ("?" + query if query else ""))
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["details"]["parameter"] == parameter
    assert f"'{parameter}'" in error["message"]
    assert r.headers["cache-control"] == "no-store"


def test_empty_values_count_as_absent(api: ApiServer) -> None:
    r = api.get("/api/v1/catalog?page=&min_price=&q=&categories=&sort=")
    assert r.status_code == 200
    assert r.json()["total"] == 28 and r.json()["page"] == 1


def test_unknown_route_and_method_use_the_error_shape(api: ApiServer) -> None:
    r = api.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    with api.client() as c:
        r = c.post("/api/v1/catalog", content=b"{}")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in r.json()["error"]["details"]["allowed_methods"]


def test_oversized_headers_use_the_error_shape(api: ApiServer) -> None:
    r = api.get("/api/v1/catalog", headers={"X-Big": "x" * 20_000})
    assert r.status_code in (413, 431)
    assert r.json()["error"]["code"] in ("payload_too_large", "request_header_fields_too_large")


def test_garbage_request_line_never_leaks_a_trace(api: ApiServer) -> None:
    parts = urlsplit(api.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as s:
        s.sendall(b"GET /api/v1/catalog?q=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b'"error"' in body and b"Traceback" not in body and b"File " not in body


@pytest.mark.parametrize(
    "target", [b"/api/v1/catalog?q=a\x00b", b"/api/v1/products/a\x01b", b"/api/v1/\x7f"]
)
def test_raw_control_bytes_in_the_url_get_a_json_400(api: ApiServer, target: bytes) -> None:
    """httptools rejects these request lines; the answer is still the JSON 400, not a dropped
    connection (api.http.ApiRequest)."""
    parts = urlsplit(api.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data[:200]
    assert b'"code":"bad_request"' in body and b"Traceback" not in body


def test_head_is_supported(api: ApiServer) -> None:
    with api.client() as c:
        r = c.head("/api/v1/meta/categories")
    assert r.status_code == 200 and r.content == b""
