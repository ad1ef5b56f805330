#!/usr/bin/env python3
"""A foreign (non-Go) worker for `handoff run`, used by the integration tests.

It adopts the listening socket at fd 3 the systemd way (LISTEN_PID must be
its own PID, LISTEN_FDS at least 1), tells the supervisor it is ready by
sending READY=1 to NOTIFY_SOCKET, and answers every request with
"version=<VERSION> pid=<pid>" (VERSION from argv[1] or the environment).

On SIGTERM it stops accepting, answers the requests still coming on its open
connections with "Connection: close", waits for them to finish (bounded),
and exits 0.
"""
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRACE = 10.0  # seconds open connections get after SIGTERM

VERSION = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VERSION", "dev")
draining = threading.Event()
active = set()
active_lock = threading.Lock()


def die(msg):
    print("pyserver: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def adopt():
    pid = os.environ.get("LISTEN_PID")
    if pid != str(os.getpid()):
        die("LISTEN_PID=%r is not my PID %d: not started by handoff run?" % (pid, os.getpid()))
    n = os.environ.get("LISTEN_FDS")
    if not n or not n.isdigit() or int(n) < 1:
        die("LISTEN_FDS=%r: no socket was handed over" % n)
    names = os.environ.get("LISTEN_FDNAMES", "")
    if len(names.split(":")) != int(n):
        die("LISTEN_FDNAMES=%r does not name %s sockets" % (names, n))
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        del os.environ[k]
    sock = socket.socket(fileno=3)
    # The socket is shared with the supervisor and the other worker: keep
    # it non-blocking, so that an accept another process won does not hang
    # this one (the server polls before it accepts).
    sock.setblocking(False)
    return sock


def notify(msg):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        die("NOTIFY_SOCKET is not set")
    if path.startswith("@"):
        path = "\0" + path[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(msg.encode(), path)
    finally:
        s.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go in two writes

    def setup(self):
        super().setup()
        with active_lock:
            active.add(threading.current_thread())

    def finish(self):
        try:
            super().finish()
        finally:
            with active_lock:
                active.discard(threading.current_thread())

    def do_GET(self):
        body = ("version=%s pid=%d" % (VERSION, os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if draining.is_set():
            # Answer, then close: the client reconnects to the new worker.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up is not the server's problem; anything
        # else is printed with its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def main():
    sock = adopt()
    srv = Server(sock.getsockname(), Handler, bind_and_activate=False)
    srv.socket.close()
    srv.socket = sock
    srv.server_address = sock.getsockname()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    t.start()
    notify("READY=1\nSTATUS=serving version %s" % VERSION)
    while not stop.wait(1):
        pass
    draining.set()
    srv.shutdown()  # stop accepting; queued connections go to the new worker
    t.join()
    sock.close()
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        with active_lock:
            if not active:
                break
        time.sleep(0.01)
    print("pyserver %d: drained, exiting" % os.getpid(), file=sys.stderr, flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
