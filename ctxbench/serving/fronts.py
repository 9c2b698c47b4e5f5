"""Fronts as data: what sits between the clients and the server (nothing, nginx, HAProxy), each with its config.

A front is a reverse proxy from Debian's packages, configured as users configure it for keep-alive to the app
(nginx: an `upstream` block with `keepalive`, `proxy_http_version 1.1`, an empty `Connection` header; HAProxy:
`mode http`, its default `option http-keep-alive`), so that *different clients'* requests reach the app one after
another on the same upstream connection. Each front renders its config file into a temporary prefix, listens on
127.0.0.1 only, and is started and stopped by PID like a server (ctxbench.serving.process). Adding one is one `Front`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

DIRECT, NGINX, HAPROXY = "direct", "nginx", "haproxy"
INSTALL = "apt-get install -y nginx haproxy"  # what a front's skipped cells tell the reader to run
UPSTREAM_KEEPALIVE = 16  # idle upstream connections nginx keeps per worker: the value of nginx's own example
# apt installs both under /usr/sbin, which is not on every user's PATH
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

NGINX_CONF = """\
# rendered by ctxbench (ctxbench/serving/fronts.py): front {label}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{
        server {host}:{upstream_port};
        keepalive {keepalive};
    }}
    server {{
        listen {host}:{port}{listen};{server_lines}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;{options}
        }}
    }}
}}
"""

HAPROXY_CONF = """\
# rendered by ctxbench (ctxbench/serving/fronts.py): front {label}
global
    maxconn 1024
    nbthread 1
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend web
    bind {host}:{port}
    default_backend app
backend app{options}
    server app1 {host}:{upstream_port}
"""


@dataclass(frozen=True, slots=True)
class FrontKind:
    name: str
    binary: str | None  # None: no process (direct)
    template: str
    indent: str  # how each option line is indented in the template

    def command(self, binary: str, prefix: Path, conf: Path) -> list[str]:
        if self.name == NGINX:
            # -e: the error log before the config is read (else nginx opens /var/log/nginx/error.log first)
            return [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        return [binary, "-f", str(conf), "-db"]  # -db: foreground, no daemon, stays in our process group


KINDS = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            FrontKind(DIRECT, None, "", ""),
            FrontKind(NGINX, "nginx", NGINX_CONF, " " * 12),
            FrontKind(HAPROXY, "haproxy", HAPROXY_CONF, " " * 4),
        )
    }
)


@dataclass(frozen=True, slots=True)
class Front:
    label: str
    kind: str = DIRECT
    options: tuple[str, ...] = ()  # config lines added where the kind's template takes them (nginx: `location /`)
    tls: bool = False  # terminates TLS with a certificate generated for the run (ctxbench.serving.tls); nginx only
    http2: bool = False  # offers HTTP/2 to clients (by ALPN under TLS); upstream stays HTTP/1.1 keep-alive

    @property
    def front_kind(self) -> FrontKind:
        return KINDS[self.kind]

    @property
    def is_direct(self) -> bool:
        return self.front_kind.binary is None

    def binary(self) -> str | None:
        """The installed program's path, or None (also for direct)."""
        name = self.front_kind.binary
        return shutil.which(name, path=SEARCH_PATH) if name else None

    def missing(self) -> str | None:
        """Why this front cannot run here (with the install command), or None when it can."""
        if self.is_direct or self.binary() is not None:
            return None
        return f"front {self.label} needs {self.front_kind.binary}, which is not installed: {INSTALL}"

    def render(self, prefix: Path, port: int, upstream_port: int, host: str) -> str:
        """The config file's text, for a front listening on host:port in front of host:upstream_port."""
        kind = self.front_kind
        options = "".join(f"\n{kind.indent}{line}" for line in self.options)
        listen = (" ssl" if self.tls else "") + (" http2" if self.http2 else "")
        server_lines = "".join(
            f"\n        {line}"
            for line in (f"ssl_certificate {prefix}/cert.pem;", f"ssl_certificate_key {prefix}/key.pem;")
            if self.tls
        )
        values = {"label": self.label, "prefix": prefix, "host": host, "port": port, "upstream_port": upstream_port}
        values |= {"listen": listen, "server_lines": server_lines, "options": options}
        return kind.template.format(**values, keepalive=UPSTREAM_KEEPALIVE)

    def command(self, prefix: Path, conf: Path) -> list[str]:
        binary = self.binary()
        if binary is None:
            raise RuntimeError(self.missing() or f"front {self.label} runs no process")
        return self.front_kind.command(binary, prefix, conf)

    def version(self) -> str | None:
        """`nginx -v` / `haproxy -v`, first line (both print their version and exit)."""
        binary = self.binary()
        if binary is None:
            return None
        done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0].strip() if lines else None

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "kind": self.kind,
            "options": list(self.options),
            "tls": self.tls,
            "http2": self.http2,
        }


DIRECT_FRONT = Front("direct")  # no proxy: the client's connection is the server's connection (every run until now)
NGINX_DEFAULT = Front("nginx", NGINX)  # nginx's default buffering of responses and request bodies
NGINX_UNBUFFERED = Front("nginx-unbuffered", NGINX, ("proxy_buffering off;", "proxy_request_buffering off;"))
HAPROXY_SAFE = Front("haproxy", HAPROXY)  # http-reuse safe, HAProxy's default
HAPROXY_ALWAYS = Front("haproxy-always", HAPROXY, ("http-reuse always",))

ALL: tuple[Front, ...] = (DIRECT_FRONT, NGINX_DEFAULT, NGINX_UNBUFFERED, HAPROXY_SAFE, HAPROXY_ALWAYS)
PROXIES: tuple[Front, ...] = tuple(front for front in ALL if not front.is_direct)
BY_LABEL = MappingProxyType({front.label: front for front in ALL})
# nginx terminating HTTP/2 (TLS, ALPN) before an HTTP/1.1 keep-alive upstream: driven by the multiplexing HTTP/2 client
# (scripts.load.h2), not by locust, so not a front of the hunt's locust cells
NGINX_H2 = Front("nginx-h2", NGINX, tls=True, http2=True)


def get(label: str) -> Front:
    try:
        return BY_LABEL[label]
    except KeyError:
        raise KeyError(f"unknown front {label!r}; known: {', '.join(BY_LABEL)}") from None
