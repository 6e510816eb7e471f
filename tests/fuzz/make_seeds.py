#!/usr/bin/env python3
"""Write the generated seeds of the tunnel fuzz corpora (tests/fuzz/corpus/{frame,hello}).

    python3 tests/fuzz/make_seeds.py          # (re)write them; idempotent
    python3 tests/fuzz/make_seeds.py --check  # exit 1 if a generated seed is missing or differs

Encodes frames exactly as docs/protocol.md (and tunnel/src/frame.cpp) specify:
a 9-byte header (length u24, type u8, flags u8, stream id u32, big-endian),
strings as u16 length + bytes. Every generated file starts with "gen-"; the
other files in the corpus directories were made by hand and are left alone.
"""
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

MAGIC = 0x48525448  # "HRTH"
VERSION = 1
HELLO, WELCOME, REJECT, OPEN, DATA, FIN, RESET, WINDOW, PING, PONG, GOAWAY, PUBLISH, PUBLISHED = range(1, 14)


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return u16(len(b)) + b


def frame(ftype, stream_id, payload=b"", flags=0):
    n = len(payload)
    return bytes([n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF, ftype, flags]) + u32(stream_id) + payload


def hello(name, routes, index=0, software="hearth-origin/0.1.0", version=VERSION):
    out = u32(MAGIC) + u16(version) + string(name) + string(software) + u32(index)
    out += u16(len(routes))
    for host, path in routes:
        out += string(host) + string(path)
    return out


def welcome(edge_id="edge", keepalive_ms=10000):
    return u32(MAGIC) + u16(VERSION) + string(edge_id) + u32(keepalive_ms)


def welcome2(refused, edge_id="edge", keepalive_ms=10000):
    """Version 2 WELCOME: the refused-route list follows (docs/protocol.md 3.2)."""
    out = u32(MAGIC) + u16(2) + string(edge_id) + u32(keepalive_ms) + u16(len(refused))
    for host, path, reason in refused:
        out += string(host) + string(path) + string(reason)
    return out


def publish(seq, routes):
    """PUBLISH (3.5): routes are (host, path, health) with health 0 unknown, 1 ok, 2 down."""
    out = u32(seq) + u16(len(routes))
    for host, path, health in routes:
        out += string(host) + string(path) + u8(health)
    return out


def published(seq, refused):
    out = u32(seq) + u16(len(refused))
    for host, path, reason in refused:
        out += string(host) + string(path) + string(reason)
    return out


def open_(host, path, client="203.0.113.7:51000", kind=0):
    return string(host) + string(path) + string(client) + u8(kind)


def reset(code, reason=""):
    return u32(code) + string(reason)


def goaway(last_stream_id, reason=""):
    return u32(last_stream_id) + string(reason)


ROUTES = [("app.example.com", "/"), ("app.example.com", "/signaling"), ("*.home.example.com", "/")]

HELLO_SEEDS = {
    # hello_fuzz: HELLO payloads only (the registration parser).
    "gen-no-routes": hello("home", []),
    "gen-three-routes": hello("home", ROUTES, index=1),
    "gen-ipv6-and-idn": hello("lab", [("[::1]", "/"), ("xn--bcher-kva.example", "/a/b?c")], index=63),
    "gen-empty-strings": hello("", [("", "")], software=""),
    "gen-version-2": hello("home", ROUTES[:1], version=2),
}

FRAME_SEEDS = {
    # frame_fuzz: whole frames, one file per frame type...
    "gen-hello": frame(HELLO, 0, hello("home", ROUTES)),
    "gen-welcome": frame(WELCOME, 0, welcome("edge-1", 10000)),
    "gen-reject": frame(REJECT, 0, string("route host not allowed for origin home: evil.example")),
    "gen-open-http": frame(OPEN, 1, open_("app.example.com", "/index.html?x=1")),
    "gen-open-websocket": frame(OPEN, 3, open_("app.example.com", "/signaling", "[2001:db8::1]:443", 1)),
    "gen-data": frame(DATA, 1, b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n"),
    "gen-fin": frame(FIN, 1),
    "gen-reset": frame(RESET, 1, reset(2, "no route")),
    "gen-reset-unknown-code": frame(RESET, 5, reset(99)),
    "gen-window": frame(WINDOW, 1, u32(256 * 1024)),
    "gen-ping": frame(PING, 0, bytes(range(8))),
    "gen-pong": frame(PONG, 0, bytes(range(8))),
    "gen-goaway": frame(GOAWAY, 0, goaway(7, "draining")),
    # Version 2 (issue 13): live publish and partial refusal.
    "gen-welcome-v2": frame(WELCOME, 0, welcome2([("evil.example", "/", "hostname not allowed")])),
    "gen-publish": frame(PUBLISH, 0, publish(3, [("app.example.com", "/", 1),
                                                 ("app.example.com", "/api", 2),
                                                 ("*.home.example.com", "/", 0)])),
    "gen-publish-empty": frame(PUBLISH, 0, publish(4, [])),
    "gen-published": frame(PUBLISHED, 0, published(3, [("evil.example", "/", "not allowed")])),
    "gen-publish-bad-health": frame(PUBLISH, 0, publish(5, [("a.example", "/", 7)])),
    "gen-handshake-v2": frame(HELLO, 0, hello("home", ROUTES, version=2))
    + frame(WELCOME, 0, welcome2([]))
    + frame(PUBLISH, 0, publish(1, [(h, p, 1) for h, p in ROUTES]))
    + frame(PUBLISHED, 0, published(1, [])),
    # ...and the handshake as each side reads it.
    "gen-handshake-welcome": frame(HELLO, 0, hello("home", ROUTES)) + frame(WELCOME, 0, welcome()),
    "gen-handshake-reject": frame(HELLO, 0, hello("stranger", ROUTES[:1]))
    + frame(REJECT, 0, string("origin not authorized")),
    # A stream's life after WELCOME, both directions interleaved.
    "gen-stream": frame(WELCOME, 0, welcome())
    + frame(OPEN, 1, open_("app.example.com", "/"))
    + frame(DATA, 1, b"x")
    + frame(WINDOW, 1, u32(1))
    + frame(FIN, 1)
    + frame(PING, 0, b"\0" * 8)
    + frame(PONG, 0, b"\0" * 8)
    + frame(RESET, 1, reset(0))
    + frame(GOAWAY, 0, goaway(1)),
}


def main():
    check = sys.argv[1:] == ["--check"]
    bad = 0
    for directory, seeds in (("hello", HELLO_SEEDS), ("frame", FRAME_SEEDS)):
        target = CORPUS / directory
        target.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            path = target / name
            if check:
                if not path.exists() or path.read_bytes() != data:
                    print(f"make_seeds: {path} missing or out of date")
                    bad += 1
            elif not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
                print(f"make_seeds: wrote {path.relative_to(HERE)} ({len(data)} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
