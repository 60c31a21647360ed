#!/usr/bin/env python3
"""SMTP sink (port 1025) + GET /api/v1/messages and /readyz (port 8025); `mailpit readyz` checks both."""

import asyncio
import email
import json
import os
import signal
import socket
import sys

MESSAGES = []


async def smtp(reader, writer):
    try:
        await _smtp(reader, writer)
    except (ConnectionError, OSError, IndexError, ValueError):
        pass  # a client that hung up, or a health check that only connects
    finally:
        writer.close()


async def http(reader, writer):
    try:
        await _http(reader, writer)
    except (ConnectionError, OSError, IndexError, ValueError):
        pass
    finally:
        writer.close()


async def _smtp(reader, writer):
    def send(line):
        writer.write(line.encode() + b"\r\n")

    send("220 mailpit stand-in")
    recipients, sender = [], ""
    while line := await reader.readline():
        command = line.decode(errors="replace").strip()
        verb = command[:4].upper()
        if verb in ("HELO", "EHLO"):
            send("250 mailpit")
        elif verb == "MAIL":
            sender, recipients = command.split(":", 1)[1].strip(" <>"), []
            send("250 OK")
        elif verb == "RCPT":
            recipients.append(command.split(":", 1)[1].strip(" <>"))
            send("250 OK")
        elif verb == "DATA":
            send("354 end with .")
            lines = []
            while (data := await reader.readline()) not in (b".\r\n", b".\n", b""):
                lines.append(data[1:] if data.startswith(b"..") else data)
            message = email.message_from_bytes(b"".join(lines))
            MESSAGES.append(
                {
                    "From": {"Address": sender},
                    "To": [{"Address": r} for r in recipients],
                    "Subject": message.get("Subject", ""),
                }
            )
            send("250 OK queued")
        elif verb == "QUIT":
            send("221 bye")
            break
        else:
            send("250 OK")
        await writer.drain()
    writer.close()


async def _http(reader, writer):
    request = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    path = request.split()[1].decode() if len(request.split()) > 1 else "/"
    if path.startswith("/api/v1/messages"):
        body, status = json.dumps({"total": len(MESSAGES), "messages": MESSAGES[::-1]}).encode(), "200 OK"
    elif path == "/readyz":
        body, status = b"ok", "200 OK"
    else:
        body, status = b"mailpit stand-in", "200 OK"
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()


async def main():
    smtp_server = await asyncio.start_server(smtp, "0.0.0.0", 1025)
    http_server = await asyncio.start_server(http, "0.0.0.0", 8025)
    print("mailpit stand-in: SMTP on 1025, HTTP on 8025", flush=True)
    async with smtp_server, http_server:
        await asyncio.gather(smtp_server.serve_forever(), http_server.serve_forever())


if __name__ == "__main__":
    if sys.argv[1:] == ["readyz"]:
        for port in (1025, 8025):
            with socket.create_connection(("127.0.0.1", port), timeout=3):
                pass
        sys.exit(0)
    # PID 1 ignores a signal it has no handler for: stop at once on `docker stop`, as Mailpit does.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())
