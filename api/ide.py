"""GraphiQL served from the app itself, so the explorer works with no internet.

Strawberry's GraphiQL page loads React and GraphiQL from a CDN. `make install`
puts the same pinned versions under web/node_modules (from the npm registry; not
committed); when they are there, the page points at /graphiql-assets/ instead.
Without the local copy the page falls back to the CDN.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

NODE_MODULES = Path(__file__).resolve().parent.parent / "web" / "node_modules"
ASSET_PREFIX = "/graphiql-assets/"
_CDN = re.compile(r"https://unpkg\.com/((?:@[^/\"]+/)?[^@/\"]+)@[^/\"]+/([^\"]+)")


def local_assets_present() -> bool:
    return (NODE_MODULES / "graphiql" / "graphiql.min.js").exists()


@cache
def graphiql_html() -> str:
    html = get_graphql_ide_html(graphql_ide="graphiql")
    if not local_assets_present():
        return html
    return _CDN.sub(lambda m: f"{ASSET_PREFIX}{m[1]}/{m[2]}", html)


__all__ = ["ASSET_PREFIX", "NODE_MODULES", "graphiql_html", "local_assets_present"]
