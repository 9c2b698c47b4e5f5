"""uvicorn configurations as a dimension of a load run: event loop, HTTP parser, --reset-contextvars, workers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerConfig:
    loop: str = "uvloop"
    http: str = "httptools"
    reset_contextvars: bool = False
    workers: int = 1

    @property
    def label(self) -> str:
        parts = [self.loop, self.http]
        if self.reset_contextvars:
            parts.append("reset")
        if self.workers != 1:
            parts.append(f"w{self.workers}")
        return "-".join(parts)

    def args(self) -> list[str]:
        args = ["--loop", self.loop, "--http", self.http]
        if self.reset_contextvars:
            args.append("--reset-contextvars")
        if self.workers != 1:
            args += ["--workers", str(self.workers)]
        return args

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "loop": self.loop,
            "http": self.http,
            "reset_contextvars": self.reset_contextvars,
            "workers": self.workers,
        }


DEFAULT = ServerConfig()  # what `uvicorn app` picks with uvicorn[standard] installed
PURE_PYTHON = ServerConfig("asyncio", "h11")
# Each default-config cell has its --reset-contextvars twin, so the report can tell "fixed by a fresh Context".
LEAK_HUNT = (DEFAULT, PURE_PYTHON, ServerConfig(reset_contextvars=True), ServerConfig("asyncio", "h11", True))
FULL = (
    DEFAULT,
    PURE_PYTHON,
    ServerConfig("asyncio", "httptools"),
    ServerConfig("uvloop", "h11"),
    ServerConfig(reset_contextvars=True),
    ServerConfig("asyncio", "h11", reset_contextvars=True),
    ServerConfig(workers=2),
)
BY_LABEL = {config.label: config for config in FULL}


def parse(label: str) -> ServerConfig:
    """A label such as `uvloop-httptools-reset-w2` back to its configuration."""
    loop, http, *rest = label.split("-")
    workers = next((int(part[1:]) for part in rest if part.startswith("w")), 1)
    return ServerConfig(loop, http, "reset" in rest, workers)
