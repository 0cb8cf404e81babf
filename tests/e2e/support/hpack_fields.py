"""An HTTP/2 client that reports how each response header field was coded.

    python3 hpack_fields.py HOST PORT PATH COUNT

Sends COUNT GETs for PATH, one after the other on one h2c connection (prior
knowledge), and decodes each response's header block with the `hpack`
package (PyPI; scripts/test installs it). Prints one JSON object:
{"responses": [[[name, value, indexable], ...], ...], "table": [[name, value], ...]}
where `indexable` is false for a field sent as "never indexed" (RFC 7541
§6.2.3) and `table` is the decoder's dynamic table at the end: what the
server asked the client to remember.
"""

import json
import socket
import struct
import sys

import hpack

HEADERS, DATA, SETTINGS, PING, GOAWAY, RST_STREAM, CONTINUATION = 1, 0, 4, 6, 7, 3, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise SystemExit("the server closed the connection")
        out += chunk
    return out


def read_frame(sock):
    head = read_exact(sock, 9)
    length = int.from_bytes(head[:3], "big")
    kind, flags = head[3], head[4]
    stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
    return kind, flags, stream, read_exact(sock, length)


def main():
    host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    responses = []
    for i in range(count):
        stream = 2 * i + 1
        block = encoder.encode(
            [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", f"{host}:{port}")]
        )
        sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, stream, block))
        block, done = b"", False
        while not done:
            kind, flags, sid, payload = read_frame(sock)
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                sock.sendall(frame(PING, ACK, 0, payload))
            elif kind in (GOAWAY, RST_STREAM):
                raise SystemExit(f"frame type {kind} from the server: {payload!r}")
            elif sid == stream and kind in (HEADERS, CONTINUATION):
                if kind == HEADERS and flags & 0x8:  # PADDED
                    payload = payload[1 : len(payload) - payload[0]]
                if kind == HEADERS and flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                block += payload
                if flags & END_HEADERS:
                    fields = decoder.decode(block)
                    responses.append([[n, v, f.indexable] for f in fields for n, v in [f]])
                    block = b""
                done = bool(flags & END_STREAM)
            elif sid == stream and kind == DATA:
                done = bool(flags & END_STREAM)
    table = [[n.decode(), v.decode()] for n, v in decoder.header_table.dynamic_entries]
    print(json.dumps({"responses": responses, "table": table}))


main()
