#!/usr/bin/python3
"""A TCP proxy for scripts/proof (scenario proxy), standard library only.

  proof_proxy.py --listen PORT --target HOST:PORT --log FILE [--mode tcp|http-slow]

tcp: forwards bytes both ways. SIGUSR1 freezes every connection open at that moment: from then
on their bytes are read and dropped, nothing is forwarded and nothing is closed (a half-open
path: the peers see silence, no FIN, no RST). Connections made later are forwarded normally.
http-slow: an HTTP/1.1 reverse proxy for the ERP that, while frozen by SIGUSR1 (until SIGUSR2),
answers each request late: every second request 12 s late, the others trickled back one byte
every 50 ms. The log gets one line per event: `<unix time> accept|freeze|close <n>`.
"""
import argparse
import signal
import socket
import threading
import time

lock = threading.Lock()
connections = {}  # id -> {"frozen": bool}
state = {"frozen_http": False, "next": 0, "requests": 0}


def log(path, text):
    with lock:
        with open(path, "a") as f:
            f.write(f"{time.time():.3f} {text}\n")


def pipe(src, dst, conn_id):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if connections.get(conn_id, {}).get("frozen"):
                continue  # swallowed: the half-open path
            dst.sendall(data)
    except OSError:
        pass
    finally:
        if not connections.get(conn_id, {}).get("frozen"):
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def serve_tcp(args, listener):
    host, port = args.target.rsplit(":", 1)
    while True:
        client, _ = listener.accept()
        with lock:
            state["next"] += 1
            conn_id = state["next"]
            connections[conn_id] = {"frozen": False}
        log(args.log, f"accept {conn_id}")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream, conn_id), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client, conn_id), daemon=True).start()


def read_http(sock):
    """One HTTP/1.1 message (headers and Content-Length body); None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def serve_http_client(args, client):
    host, port = args.target.rsplit(":", 1)
    upstream = socket.create_connection((host, int(port)), timeout=30)
    try:
        while True:
            request = read_http(client)
            if request is None:
                return
            upstream.sendall(request)
            response = read_http(upstream)
            if response is None:
                return
            if state["frozen_http"]:
                with lock:
                    state["requests"] += 1
                    n = state["requests"]
                if n % 2 == 0:
                    log(args.log, f"late {n}")
                    time.sleep(12)
                    client.sendall(response)
                else:
                    log(args.log, f"trickle {n}")
                    for i in range(len(response)):
                        client.sendall(response[i:i + 1])
                        time.sleep(0.05)
            else:
                client.sendall(response)
    except OSError:
        pass
    finally:
        client.close()
        upstream.close()


def serve_http(args, listener):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve_http_client, args=(args, client), daemon=True).start()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--mode", default="tcp", choices=["tcp", "http-slow"])
    args = parser.parse_args()

    def freeze(*_):
        if args.mode == "tcp":
            with lock:
                ids = [i for i, c in connections.items() if not c["frozen"]]
                for i in ids:
                    connections[i]["frozen"] = True
            log(args.log, "freeze " + ",".join(map(str, ids)))
        else:
            state["frozen_http"] = True
            log(args.log, "slow on")

    def thaw(*_):
        state["frozen_http"] = False
        log(args.log, "slow off")

    signal.signal(signal.SIGUSR1, freeze)
    signal.signal(signal.SIGUSR2, thaw)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen))
    listener.listen(128)
    log(args.log, "listening")
    (serve_tcp if args.mode == "tcp" else serve_http)(args, listener)


if __name__ == "__main__":
    main()
