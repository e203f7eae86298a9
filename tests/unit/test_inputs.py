"""Input URI policy: schemes, S3 keys, host allowlist, address classes, environment parsing.

Resolution uses the real resolver on IP literals and `localhost` (no network needed); the remaining cases inject a
fixed resolver table standing in for DNS answers that cannot be produced here (a public name resolving to a private
address is exactly what a hostile DNS server would do).
"""

from __future__ import annotations

import pytest

from videojob.api.runtime import ExitCode
from videojob.errors import BadInput
from videojob.inputs import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SECONDS,
    InputPolicy,
    address_problem,
    check_uri,
    host_allowed,
    parse_uri,
)

DEFAULT = InputPolicy()
HTTP_OK = InputPolicy(allow_http=True)
PRIVATE_OK = InputPolicy(allow_http=True, allow_private_networks=True)


@pytest.mark.parametrize(
    ("uri", "scheme", "host", "path"),
    [
        ("s3://media/in/intro.mp4", "s3", "media", "in/intro.mp4"),
        ("s3://my.bucket-1/a b.mp4".replace(" ", "_"), "s3", "my.bucket-1", "a_b.mp4"),
        ("s3://media/dir/..name.mp4", "s3", "media", "dir/..name.mp4"),
        ("s3://media/what?x#y.mp4", "s3", "media", "what?x#y.mp4"),
        ("https://media.example.com/main.avi", "https", "media.example.com", "/main.avi"),
        ("https://Media.Example.COM./v.mp4?sig=1&x=2", "https", "media.example.com", "/v.mp4?sig=1&x=2"),
        ("https://example.com", "https", "example.com", "/"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_accepted_uris_are_taken_apart(uri: str, scheme: str, host: str, path: str) -> None:
    parsed = parse_uri(uri, DEFAULT)
    assert (parsed.scheme, parsed.host, parsed.path) == (scheme, host, path)


def test_s3_uri_exposes_bucket_and_key() -> None:
    parsed = parse_uri("s3://media/in/x.mp4", DEFAULT)
    assert (parsed.bucket, parsed.key, parsed.is_s3) == ("media", "in/x.mp4", True)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("file:/etc/passwd", "scheme 'file'"),
        ("/etc/passwd", "no scheme"),
        ("concat:a.mp4|b.mp4", "scheme 'concat'"),
        ("subfile,,start,0,end,10,,:/etc/passwd", "scheme 'subfile,,start,0,end,10,,'"),
        ("data:text/plain;base64,aGVsbG8=", "scheme 'data'"),
        ("pipe:0", "scheme 'pipe'"),
        ("ftp://example.com/x.mp4", "scheme 'ftp'"),
        ("rtmp://example.com/live", "scheme 'rtmp'"),
        ("hls+http://example.com/x.m3u8", "scheme 'hls+http'"),
        ("crypto+https://example.com/x", "scheme 'crypto+https'"),
        ("gopher://example.com/", "scheme 'gopher'"),
        ("HTTPS://example.com/x.mp4", "scheme 'HTTPS'"),
        ("http://example.com/x.mp4", "http:// is not allowed"),
        ("", "empty"),
        ("https://example.com/a b.mp4", "whitespace"),
        ("https://example.com/a\nb.mp4", "whitespace"),
        ("s3://media/in/../secret.mp4", "'..' segment"),
        ("s3://media/../x.mp4", "'..' segment"),
        ("s3://media/in/..", "'..' segment"),
        ("s3://media/./x.mp4", "'..' segment"),
        ("s3://media//x.mp4", "starts with '/'"),
        ("s3://media/in//x.mp4", "empty"),
        ("s3://media/in/", "empty"),
        ("s3://media", "no object key"),
        ("s3://media/", "no object key"),
        ("s3://Media/x.mp4", "not a valid bucket"),
        ("s3://a..b/x.mp4", "not a valid bucket"),
        ("s3://ab/x.mp4", "not a valid bucket"),
        ("s3://media/" + "k" * 1025, "longer than 1024"),
        ("https://user:pass@example.com/x.mp4", "credentials"),
        ("https://example.com@169.254.169.254/x", "credentials"),
        ("https://example.com:99999/x", "invalid port"),
        ("https://example.com:0/x", "invalid port"),
        ("https:///x.mp4", "no host"),
        ("https://exa_mple.com/x", "not a valid host name"),
        ("https://example.com\\.evil.com/x", "not a valid host name"),
    ],
    ids=lambda v: repr(v)[:48],
)
def test_refused_uris_name_the_uri_and_the_reason(uri: str, why: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_uri(uri, DEFAULT)
    message = str(caught.value)
    assert why in message
    assert repr(uri)[:60] in message or repr(uri[:80]) in message
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_http_is_accepted_only_when_allowed() -> None:
    assert parse_uri("http://example.com/x.mp4", HTTP_OK).scheme == "http"


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("cdn.example.com", (), True),
        ("cdn.example.com", ("cdn.example.com",), True),
        ("CDN.Example.com.", ("cdn.example.com",), True),
        ("cdn.example.com", (".example.com",), True),
        ("a.b.example.com", (".example.com",), True),
        ("example.com", (".example.com",), False),
        ("badexample.com", (".example.com",), False),
        ("example.com.evil.net", ("example.com",), False),
        ("example.com.evil.net", (".example.com",), False),
        ("other.org", ("cdn.example.com", ".example.net"), False),
        ("x.example.net", ("cdn.example.com", ".example.net"), True),
    ],
    ids=lambda v: str(v),
)
def test_host_allowlist_matches_exact_names_and_suffixes(host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, allowed) is ok


def test_host_outside_the_allowlist_is_refused_by_name() -> None:
    policy = InputPolicy(allowed_hosts=("cdn.example.com",))
    with pytest.raises(BadInput, match=r"host 'evil\.example\.org' is not in the allowed hosts"):
        parse_uri("https://evil.example.org/x.mp4", policy)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, nothing binds to it
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not a public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
    ids=lambda v: str(v),
)
def test_address_classes(address: str, problem: str | None) -> None:
    found = address_problem(address, DEFAULT)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
    assert address_problem(address, PRIVATE_OK) is None


@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1/x.mp4",
        "https://localhost/x.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/x.mp4",
        "https://[::ffff:127.0.0.1]/x",
        "https://2130706433/x.mp4",  # 127.0.0.1 as one decimal number: inet_aton accepts it
        "https://0x7f.1/x.mp4",
        "https://10.0.0.1/x.mp4",
        "https://0.0.0.0/x.mp4",
    ],
)
def test_check_uri_resolves_and_refuses_non_public_hosts(uri: str) -> None:
    with pytest.raises(BadInput) as caught:
        check_uri(uri, HTTP_OK)
    assert repr(uri) in str(caught.value)
    assert "resolves to" in str(caught.value) or "not a valid host" in str(caught.value)


def test_check_uri_allows_loopback_when_private_networks_are_allowed() -> None:
    parsed = check_uri("http://127.0.0.1:8080/x.mp4", PRIVATE_OK)
    assert parsed.addresses == ("127.0.0.1",) and parsed.effective_port == 8080


def test_check_uri_checks_every_resolved_address() -> None:
    table = {"media.example.com": ["93.184.216.34", "10.0.0.7"]}  # stands in for a hostile DNS answer
    with pytest.raises(BadInput, match=r"resolves to 10\.0\.0\.7, a private address"):
        check_uri("https://media.example.com/x.mp4", DEFAULT, resolver=lambda host, port: table[host])


def test_check_uri_accepts_a_public_answer() -> None:
    parsed = check_uri("https://media.example.com/x.mp4", DEFAULT, resolver=lambda host, port: ["93.184.216.34"])
    assert parsed.addresses == ("93.184.216.34",) and parsed.effective_port == 443


def test_unresolvable_host_is_bad_input() -> None:
    with pytest.raises(BadInput, match="does not resolve"):
        check_uri("https://no-such-host.invalid/x.mp4", DEFAULT)


def test_check_uri_does_not_resolve_s3() -> None:
    def never(host: str, port: int) -> list[str]:
        raise AssertionError("s3 URIs must not be resolved")

    assert check_uri("s3://media/x.mp4", DEFAULT, resolver=never).key == "x.mp4"


# --- environment ---------------------------------------------------------------------------------------------


def test_policy_defaults_when_the_environment_is_empty() -> None:
    policy = InputPolicy.from_env({})
    assert policy == InputPolicy()
    assert (policy.max_bytes, policy.max_seconds) == (DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS)
    assert policy.max_bytes == 20 * 2**30 and policy.max_seconds == 6 * 3600


def test_policy_from_a_full_environment() -> None:
    policy = InputPolicy.from_env(
        {
            "VIDEOJOB_ALLOW_HTTP": "True",
            "VIDEOJOB_ALLOWED_HOSTS": " cdn.example.com, .Media.Example.NET ,,",
            "VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "yes",
            "VIDEOJOB_MAX_INPUT_BYTES": "2Gi",
            "VIDEOJOB_MAX_INPUT_SECONDS": "90.5",
        }
    )
    assert policy == InputPolicy(
        allow_http=True,
        allowed_hosts=("cdn.example.com", ".media.example.net"),
        allow_private_networks=True,
        max_bytes=2 * 2**30,
        max_seconds=90.5,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1073741824", 2**30), ("500M", 500 * 10**6), ("1k", 1000), ("3Ti", 3 * 2**40)],
)
def test_max_bytes_units(raw: str, expected: int) -> None:
    assert InputPolicy.from_env({"VIDEOJOB_MAX_INPUT_BYTES": raw}).max_bytes == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("VIDEOJOB_ALLOW_HTTP", "maybe"),
        ("VIDEOJOB_ALLOW_PRIVATE_NETWORKS", "2"),
        ("VIDEOJOB_ALLOWED_HOSTS", "good.example.com,bad host"),
        ("VIDEOJOB_ALLOWED_HOSTS", "https://example.com"),
        ("VIDEOJOB_ALLOWED_HOSTS", "."),
        ("VIDEOJOB_MAX_INPUT_BYTES", "-1"),
        ("VIDEOJOB_MAX_INPUT_BYTES", "0"),
        ("VIDEOJOB_MAX_INPUT_BYTES", "1.5G"),
        ("VIDEOJOB_MAX_INPUT_BYTES", "lots"),
        ("VIDEOJOB_MAX_INPUT_SECONDS", "soon"),
        ("VIDEOJOB_MAX_INPUT_SECONDS", "0"),
        ("VIDEOJOB_MAX_INPUT_SECONDS", "inf"),
        ("VIDEOJOB_MAX_INPUT_SECONDS", "nan"),
    ],
    ids=lambda v: str(v),
)
def test_malformed_environment_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=name):
        InputPolicy.from_env({name: raw})
