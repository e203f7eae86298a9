"""Which input URIs the transcoder may open, and under which caps.

Only `s3://bucket/key` and `https://host/path` (and `http://` when the operator allows it) are accepted; every
other scheme FFmpeg would understand (`file:`, `concat:`, `subfile:`, `data:`, `pipe:`, ...) is refused before
anything is opened. The runner fetches each input to a local file and hands FFmpeg only that file, so the URI
never reaches FFmpeg's protocol layer.

For http(s) the host must be on the allowlist (when one is configured) and every address it resolves to must be
public: loopback, private, link-local (the cloud metadata endpoint 169.254.169.254 among them), multicast,
reserved and unspecified addresses are refused unless the operator allows private networks. `check_uri` checks
the addresses once up front for a clear early error; `storage` checks them again on every connection it opens
(`check_address`), so a DNS answer that changes between the two (rebinding) cannot slip through.

Pure parts: `parse_uri`, `host_allowed`, `check_address`, `InputPolicy.from_env`. I/O: `resolve`, `check_uri`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from videojob.api import runtime
from videojob.errors import BadInput

DEFAULT_MAX_BYTES = 20 * 1024**3  # 20 GiB
DEFAULT_MAX_SECONDS = 6 * 3600.0  # 6 h of media
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_FORBIDDEN_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_SIZE = re.compile(r"^([0-9]+)\s*(|k|M|G|T|Ki|Mi|Gi|Ti)$")
_SIZE_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
MAX_KEY_BYTES = 1024  # S3's own limit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class InputPolicy:
    """What the operator allows for inputs (from the transcoder's environment, see `from_env`)."""

    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()  # exact host names, or ".suffix" for any host under it; empty = any public
    allow_private_networks: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    max_seconds: float = DEFAULT_MAX_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InputPolicy:
        """Read VIDEOJOB_ALLOW_HTTP, _ALLOWED_HOSTS, _ALLOW_PRIVATE_NETWORKS, _MAX_INPUT_BYTES, _MAX_INPUT_SECONDS.

        Unset or empty variables keep the defaults. A malformed value raises ValueError naming the variable: a
        misconfigured operator should fail loudly, not run with a policy nobody meant.
        """
        env = os.environ if environ is None else environ
        return cls(
            allow_http=_parse_bool(env, runtime.ENV_ALLOW_HTTP, False),
            allowed_hosts=_parse_hosts(env, runtime.ENV_ALLOWED_HOSTS),
            allow_private_networks=_parse_bool(env, runtime.ENV_ALLOW_PRIVATE_NETWORKS, False),
            max_bytes=_parse_size(env, runtime.ENV_MAX_INPUT_BYTES, DEFAULT_MAX_BYTES),
            max_seconds=_parse_seconds(env, runtime.ENV_MAX_INPUT_SECONDS, DEFAULT_MAX_SECONDS),
        )


@dataclass(frozen=True)
class ParsedURI:
    """An accepted input URI, taken apart. For s3, `host` is the bucket and `path` the key (no leading "/")."""

    uri: str
    scheme: str  # "s3", "https" or "http"
    host: str
    path: str
    port: int | None = None
    addresses: tuple[str, ...] = field(default=(), compare=False)  # what the host resolved to (http(s) only)

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def bucket(self) -> str:
        if not self.is_s3:
            raise ValueError(f"{self.uri} is not an s3:// URI")
        return self.host

    @property
    def key(self) -> str:
        if not self.is_s3:
            raise ValueError(f"{self.uri} is not an s3:// URI")
        return self.path

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.scheme == "https" else 80


# ---------------------------------------------------------------------------------------------------------------
# Pure checks


def parse_uri(uri: str, policy: InputPolicy) -> ParsedURI:
    """Take an input URI apart and apply every rule that needs no network: scheme, S3 key shape, host allowlist.

    Raises BadInput naming the URI.
    """
    if not isinstance(uri, str) or not uri:
        raise BadInput(f"input URI {uri!r} is empty")
    if _FORBIDDEN_CHARS.search(uri):
        raise BadInput(f"input URI {uri!r} contains whitespace or control characters")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        head = uri.split(":", 1)[0] if ":" in uri else ""
        what = f"scheme {head!r}" if head else "no scheme"
        raise BadInput(f"input URI {uri!r} is refused: {what}; only s3:// and https:// inputs are accepted")
    if scheme == "s3":
        return _parse_s3(uri, rest)
    if scheme == "https" or (scheme == "http" and policy.allow_http):
        return _parse_http(uri, scheme, policy)
    if scheme == "http":
        raise BadInput(f"input URI {uri!r} is refused: http:// is not allowed by the operator; use https://")
    raise BadInput(f"input URI {uri!r} is refused: scheme {scheme!r}; only s3:// and https:// inputs are accepted")


def _parse_s3(uri: str, rest: str) -> ParsedURI:
    bucket, slash, key = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise BadInput(f"input URI {uri!r} is refused: {bucket!r} is not a valid bucket name")
    if not slash or not key:
        raise BadInput(f"input URI {uri!r} is refused: no object key after the bucket")
    if key.startswith("/"):
        raise BadInput(f"input URI {uri!r} is refused: the object key starts with '/'")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise BadInput(f"input URI {uri!r} is refused: the object key has an empty, '.' or '..' segment")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadInput(f"input URI {uri[:80]!r}... is refused: the object key is longer than {MAX_KEY_BYTES} bytes")
    return ParsedURI(uri=uri, scheme="s3", host=bucket, path=key)


def _parse_http(uri: str, scheme: str, policy: InputPolicy) -> ParsedURI:
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise BadInput(f"input URI {uri!r} is refused: credentials in the URL are not accepted")
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"input URI {uri!r} is refused: invalid port") from None
    if port == 0:
        raise BadInput(f"input URI {uri!r} is refused: invalid port")
    host = normalise_host(parts.hostname or "")
    if not host:
        raise BadInput(f"input URI {uri!r} is refused: no host")
    if not (_HOSTNAME.match(host) or _ip_literal(host) is not None):
        raise BadInput(f"input URI {uri!r} is refused: {host!r} is not a valid host name")
    if not host_allowed(host, policy.allowed_hosts):
        raise BadInput(
            f"input URI {uri!r} is refused: host {host!r} is not in the allowed hosts "
            f"({', '.join(policy.allowed_hosts)})"
        )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return ParsedURI(uri=uri, scheme=scheme, host=host, path=path, port=port)


def normalise_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets: the form the allowlist and the checks compare."""
    return host.strip("[]").rstrip(".").lower()


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """True when `allowed_hosts` is empty, names `host` exactly, or holds a ".suffix" that `host` ends with.

    ".example.com" allows "cdn.example.com" but not "example.com" itself (list both if both are meant) and not
    "badexample.com".
    """
    allowed = tuple(allowed_hosts)
    if not allowed:
        return True
    host = normalise_host(host)
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("."):
            if host.endswith(entry) and len(host) > len(entry):
                return True
        elif host == entry:
            return True
    return False


def _ip_literal(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_problem(address: str, policy: InputPolicy) -> str | None:
    """Why an address may not be connected to under `policy` (None when it may). Pure."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if policy.allow_private_networks:
        return None
    if ip in METADATA_ADDRESSES:
        return "the cloud metadata endpoint"
    for attribute, what in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attribute):
            return f"a {what} address"
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), which is neither private nor global
        return "not a public address"
    return None


def check_address(uri: str, host: str, address: str, policy: InputPolicy) -> None:
    """Raise BadInput when `address` (one of `host`'s) is not allowed under `policy`."""
    problem = address_problem(address, policy)
    if problem is not None:
        raise BadInput(
            f"input URI {uri!r} is refused: host {host!r} resolves to {address}, {problem} "
            "(private networks are not allowed for inputs)"
        )


# ---------------------------------------------------------------------------------------------------------------
# With the network


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def check_uri(uri: str, policy: InputPolicy, resolver: Resolver = resolve) -> ParsedURI:
    """Accept or refuse an input URI (BadInput naming it). For http(s), resolves the host and checks each address.

    A host that does not resolve is BadInput too: retrying a typo does not help (a flaky resolver is rarer, and
    the fetch itself turns connection trouble into Transient).
    """
    parsed = parse_uri(uri, policy)
    if parsed.is_s3:
        return parsed
    try:
        addresses = resolver(parsed.host, parsed.effective_port)
    except (OSError, UnicodeError) as e:
        raise BadInput(f"input URI {uri!r}: host {parsed.host!r} does not resolve ({e})") from None
    if not addresses:
        raise BadInput(f"input URI {uri!r}: host {parsed.host!r} does not resolve")
    for address in addresses:
        check_address(uri, parsed.host, address, policy)
    return ParsedURI(
        uri=parsed.uri,
        scheme=parsed.scheme,
        host=parsed.host,
        path=parsed.path,
        port=parsed.port,
        addresses=tuple(addresses),
    )


# ---------------------------------------------------------------------------------------------------------------
# Environment parsing


def _parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean (use true or false)")


def _parse_hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    hosts: list[str] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        entry = item.strip().lower().rstrip(".")
        suffix = entry.startswith(".")
        bare = entry[1:] if suffix else entry
        if not bare or not (_HOSTNAME.match(bare) or (not suffix and _ip_literal(normalise_host(entry)))):
            raise ValueError(f"{name}: {item.strip()!r} is not a host name or .suffix")
        hosts.append(entry if suffix else normalise_host(entry))
    return tuple(hosts)


def _parse_size(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    m = _SIZE.match(raw.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{name}={raw!r} is not a positive byte count (e.g. 1073741824 or 20Gi)")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def _parse_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name}={raw!r} must be a positive, finite number of seconds")
    return value
