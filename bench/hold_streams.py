"""Opens N streamed chat completions against freeway and holds them open.

    python3 bench/hold_streams.py URL MODEL N KEY

Prints `open N` once every stream has sent its first event, then waits for stdin to close
(or a line) before letting go. Only the standard library: raw HTTP/1.1 over asyncio.
"""

import asyncio
import json
import sys
from urllib.parse import urlsplit


async def open_stream(host, port, model, key, ready):
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps({
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "hold this stream open"}],
    }).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    await reader.readuntil(b"data: ")
    ready.append(1)
    return reader, writer


async def main():
    url, model, n, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    ready = []
    limit = asyncio.Semaphore(256)

    async def one():
        async with limit:
            return await open_stream(parts.hostname, parts.port, model, key, ready)

    streams = await asyncio.gather(*(one() for _ in range(n)))
    print(f"open {len(streams)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, writer in streams:
        writer.close()


asyncio.run(main())
