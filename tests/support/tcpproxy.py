"""A small controllable TCP proxy for fault tests: forward, or blackhole without closing.

`blackhole()` makes every open connection, and every one accepted from then on, a
half-open one: both sockets stay open and keep being read (so both peers' kernels
acknowledge everything and TCP keepalives are answered), but nothing is forwarded any
more, in either direction. It is what a hung middlebox looks like (a NAT or a TCP proxy
that lost its state but not its sockets): no RST, no FIN, no error, just silence.
`restore()` forwards new connections again; the ones blackholed stay dead, as they do
behind a real NAT that dropped its mapping.

Threads and sockets only: one accept thread, two pump threads per connection.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class _Link:
    """One proxied connection: the client's socket and the upstream one."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None,
                 dead: bool) -> None:
        self.client, self.upstream = client, upstream
        self.dead = dead  # once dead, always dead
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class TcpProxy:
    """Listens on 127.0.0.1:<free port> and forwards to `upstream_host:upstream_port`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._blackholed = False
        self._closing = False
        self.accepted = 0  # connections accepted so far
        self._accept_thread = threading.Thread(target=self._accept, daemon=True,
                                               name=f"tcpproxy-{self.port}")
        self._accept_thread.start()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        parts = urlsplit(url)
        assert parts.hostname and parts.port, url
        return cls(parts.hostname, parts.port)

    def url(self, url: str) -> str:
        """`url` with its host:port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    # --- control --------------------------------------------------------------------

    def blackhole(self) -> None:
        """Stop forwarding on every connection, open or new; close none of them."""
        with self._lock:
            self._blackholed = True
            for link in self._links:
                link.dead = True

    def restore(self) -> None:
        """Forward new connections again (the blackholed ones stay dead)."""
        with self._lock:
            self._blackholed = False

    @property
    def live_connections(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if not link.dead and not link.closed)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            links = list(self._links)
        self._listener.close()
        for link in links:
            link.close()
        self._accept_thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the pumps ------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closing:
                    client.close()
                    return
                dead = self._blackholed
                self.accepted += 1
            upstream = None
            if not dead:  # a blackholed path never reaches the server
                try:
                    upstream = socket.create_connection(self.upstream, timeout=10)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
            link = _Link(client, upstream, dead)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._pump, args=(link, client, upstream),
                             daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._pump, args=(link, upstream, client),
                                 daemon=True).start()

    @staticmethod
    def _pump(link: _Link, src: socket.socket, dst: socket.socket | None) -> None:
        """Read `src` until it ends; forward to `dst` while the link lives, else drop."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if link.dead or dst is None:
                    continue  # read and dropped: the peer sees its bytes acknowledged
                try:
                    dst.sendall(data)
                except OSError:
                    break
        except OSError:
            pass
        if not link.dead:  # a live link ends as TCP does; a dead one stays half-open
            link.close()
