"""The one place that knows the async mode: how to listen, serve, sleep and wait.

livedash does not monkey-patch. Under eventlet the web server, Socket.IO and the hub's pump
run as green threads in the main thread; Flask-SocketIO and python-engineio use eventlet's
own primitives there, so nothing of theirs needs the standard library patched. Sensors stay
on plain native threads, where gpiozero and lgpio expect to be (patched threads and lgpio's
native callbacks are a known way to hang an eventlet server). The two worlds meet only in
``wait_for``: a blocking call handed to eventlet's pool of native threads.

Under threading everything is a native thread and Werkzeug serves, WebSocket included
(simple-websocket).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from typing import Any, Callable

log = logging.getLogger(__name__)

# eventlet announces its bug-fix-only maintenance on import: a notice for us (see the README's
# note on async modes), not something a person starting the service can act on.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


class ThreadingRuntime:
    name = "threading"

    def listen(self, host: str, port: int) -> socket.socket:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        return sock

    def serve(self, sock: socket.socket, wsgi_app: Callable, client_timeout_s: float = 60.0,
              max_clients: int = 4096) -> None:
        """Start serving *wsgi_app* on *sock* in the background (one thread per client).

        Werkzeug has no connection cap of its own: *max_clients* is enforced on connect
        (app/events.py) in both modes; eventlet's pool size is only a backstop."""
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            timeout = client_timeout_s  # a client that stops reading is let go, not waited on forever

        host, port = sock.getsockname()[:2]
        self._server = make_server(host, port, wsgi_app, threaded=True, fd=sock.fileno(), request_handler=Handler)
        self._server.daemon_threads = True
        self._thread = self.spawn(self._server.serve_forever)

    def stop_serving(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serving(self) -> bool:
        return self._thread.is_alive()

    def spawn(self, fn: Callable, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        return thread

    def alive(self, task: threading.Thread) -> bool:
        """Whether a task from ``spawn`` still runs."""
        return task.is_alive()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_for(self, blocking: Callable[[], Any]) -> Any:
        return blocking()


class EventletRuntime:
    name = "eventlet"

    def __init__(self) -> None:
        import eventlet
        import eventlet.tpool
        import eventlet.wsgi
        self._eventlet = eventlet
        self._server = None

    def listen(self, host: str, port: int) -> socket.socket:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return self._eventlet.listen(address, family=family)

    def serve(self, sock: socket.socket, wsgi_app: Callable, client_timeout_s: float = 60.0,
              max_clients: int = 4096) -> None:
        import eventlet.wsgi

        # debug=False: never send a traceback to a browser. socket_timeout: a client that stops
        # reading (bad Wi-Fi, a hung tab) blocks its own writes only this long, then is let go,
        # so its backlog cannot grow without bound; it resyncs from history when it returns.
        self._server = self._eventlet.spawn(
            eventlet.wsgi.server, sock, wsgi_app, log_output=False, debug=False,
            max_size=max_clients, socket_timeout=client_timeout_s, log=logging.getLogger("eventlet.wsgi"))

    def stop_serving(self) -> None:
        if self._server is not None:
            self._server.kill()

    def serving(self) -> bool:
        return self._server is not None and not self._server.dead

    def spawn(self, fn: Callable, *args: Any):
        return self._eventlet.spawn(fn, *args)

    def alive(self, task) -> bool:
        return not task.dead  # a GreenThread has no is_alive()

    def sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

    def wait_for(self, blocking: Callable[[], Any]) -> Any:
        return self._eventlet.tpool.execute(blocking)


def runtime_for(async_mode: str):
    return {"eventlet": EventletRuntime, "threading": ThreadingRuntime}[async_mode]()
