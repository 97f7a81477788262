"""Fetching an image from a user's URL without letting the user reach what the server can reach:
http/https only, allowlisted hosts, every resolved address public, connection only to the address
that was checked, no redirects, a byte cap and a total deadline."""
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable


class FetchError(Exception):
    """The URL is refused or could not be fetched; the message says why."""


def public_address(address: str) -> bool:
    """True for a globally routable unicast address. IPv4-mapped and 6to4/Teredo-wrapped IPv4 are judged
    by the IPv4 inside, since Python 3.11's ipaddress does not do that for every flag."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None and not public_address(str(inner)):
            return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                                 or ip.is_multicast or ip.is_unspecified)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver also reads forms like 127.1, 0177.0.0.1, 2130706433)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise FetchError(f"cannot resolve {host}: {e}") from None
    return sorted({info[4][0] for info in infos})


def fetch(url: str, hosts: list[str], max_bytes: int, timeout_s: float,
          allowed: Callable[[str], bool] = public_address) -> bytes:
    """The body of `url`, or FetchError. `allowed` judges each resolved address (tests widen it)."""
    deadline = time.monotonic() + timeout_s
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError("only http and https URLs are fetched")
    host = (parts.hostname or "").lower()
    if parts.username or parts.password:
        raise FetchError("URLs with credentials are refused")
    if host not in {h.lower() for h in hosts}:
        raise FetchError(f"host {host!r} is not in serve.url_hosts")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError("bad port") from None
    addresses = resolve(host, port)
    sock = None
    refused = [a for a in addresses if not allowed(a)]
    if not addresses or refused:
        raise FetchError(f"{host} resolves to a non-public address ({', '.join(refused)})")
    address = addresses[0]
    try:
        sock = socket.create_connection((address, port), timeout=max(0.01, deadline - time.monotonic()))
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection = http.client.HTTPConnection(host, port, timeout=max(0.01, deadline - time.monotonic()))
        connection.sock = sock  # connect only to the address that was checked
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection.request("GET", path, headers={"Host": parts.netloc.rpartition("@")[2], "User-Agent": "im2latex"})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise FetchError(f"redirects are not followed (HTTP {response.status})")
        if response.status != 200:
            raise FetchError(f"the server answered HTTP {response.status}")
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchError(f"the image is over {max_bytes} bytes")
        body = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(f"the fetch took longer than {timeout_s} s")
            sock.settimeout(remaining)
            block = response.read1(65536)
            if not block:
                return bytes(body)
            body += block
            if len(body) > max_bytes:
                raise FetchError(f"the image is over {max_bytes} bytes")
    except TimeoutError:
        raise FetchError(f"the fetch took longer than {timeout_s} s") from None
    except (OSError, http.client.HTTPException) as e:
        raise FetchError(f"cannot fetch the URL: {e or type(e).__name__}") from None
    finally:
        if sock is not None:
            sock.close()
