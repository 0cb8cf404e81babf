#!/usr/bin/env python3
"""Open N keep-alive client connections to a proxy, send one GET on each (so
each has been through a full request, as a real idle keep-alive client has),
then hold them all open and idle.

Prints `ready OPEN FAILED` on stdout once every connection has its response,
then keeps them until SIGTERM or --hold seconds pass. Standard library only.

    idle_conns.py HOST PORT COUNT [--batch 250] [--hold 60]
"""

import argparse
import asyncio
import signal
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: shoal-bench-idle\r\n\r\n"


async def one(host, port, conns, timeout):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await asyncio.wait_for(reader.readexactly(length), timeout)
        if not head.startswith(b"HTTP/1.1 200"):
            writer.close()
            return False
        conns.append((reader, writer))
        return True
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
        return False


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args()

    conns = []
    failed = 0
    for start in range(0, a.count, a.batch):
        n = min(a.batch, a.count - start)
        results = await asyncio.gather(*(one(a.host, a.port, conns, a.timeout) for _ in range(n)))
        failed += results.count(False)
    print(f"ready {len(conns)} {failed}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), a.hold)
    except asyncio.TimeoutError:
        pass
    # Count the connections the proxy closed meanwhile (idle timeouts).
    closed = sum(1 for r, _ in conns if r.at_eof())
    print(f"done {len(conns)} closed_by_then {closed}", flush=True)
    for _, w in conns:
        w.transport.abort()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
