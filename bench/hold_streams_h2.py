"""Opens N streamed chat completions against freeway over HTTP/2 (cleartext, prior
knowledge) and holds them open, like bench/hold_streams.py but many streams to a
connection, so that freeway's open files are its upstream sockets, not its clients'.

    .venv/bin/python bench/hold_streams_h2.py URL MODEL N KEY

Prints `open N` once every stream has sent its first event, then waits for stdin to close
(or a line) before letting go. Needs the `h2` package (in tests/e2e/requirements.txt).
"""

import asyncio
import json
import sys
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events

PER_CONNECTION = 100


async def hold(host, port, model, key, n, ready):
    """One connection carrying `n` streams; returns once each has sent its first data."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    # Room for every stream's first event without window updates.
    conn.increment_flow_control_window(1 << 30)
    body = json.dumps({
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "hold this stream open"}],
    }).encode()
    headers = [
        (":method", "POST"), (":scheme", "http"), (":authority", f"{host}:{port}"),
        (":path", "/v1/chat/completions"), ("content-type", "application/json"),
        ("authorization", f"Bearer {key}"), ("content-length", str(len(body))),
    ]
    waiting = set()
    for _ in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers)
        conn.send_data(sid, body, end_stream=True)
        waiting.add(sid)
    writer.write(conn.data_to_send())
    await writer.drain()
    while waiting:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError(f"connection closed with {len(waiting)} streams not open")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status")
                if status != b"200":
                    raise RuntimeError(f"stream {event.stream_id}: status {status}")
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id in waiting:
                    waiting.discard(event.stream_id)
                    ready.append(1)
            elif isinstance(event, h2.events.StreamReset):
                raise RuntimeError(f"stream {event.stream_id} reset: {event.error_code}")
        writer.write(conn.data_to_send())
        await writer.drain()
    return reader, writer, conn


async def main():
    url, model, n, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    ready = []
    sizes = [PER_CONNECTION] * (n // PER_CONNECTION)
    if n % PER_CONNECTION:
        sizes.append(n % PER_CONNECTION)
    limit = asyncio.Semaphore(8)

    async def one(size):
        async with limit:
            return await hold(parts.hostname, parts.port, model, key, size, ready)

    held = await asyncio.gather(*(one(size) for size in sizes))
    print(f"open {len(ready)} on {len(held)} connections", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, writer, _ in held:
        writer.close()


asyncio.run(main())
