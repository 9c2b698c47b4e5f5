"""An app whose settings fail validation at import, as pydantic-settings fails on a missing variable (probe tests).

pydantic-settings raises pydantic's own ValidationError, whose message names the field on its second line and ends
with a "For further information visit ..." line: the probe must show the field, not only that last line.
"""

from __future__ import annotations

import os

from pydantic import BaseModel


class Settings(BaseModel):
    database_url: str
    debug: bool = False


settings = Settings(**{key.lower(): value for key, value in os.environ.items() if key in ("DATABASE_URL", "DEBUG")})


async def app(scope: dict, receive: object, send: object) -> None:  # never served: the import fails
    raise RuntimeError("unreachable")
