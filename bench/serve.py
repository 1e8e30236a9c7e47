"""A seeded permgraph for profiling by hand: prints URL and token, serves until killed.

.venv/bin/python bench/serve.py --users 10000 &
py-spy record -o profile.svg --pid <pid printed>  (while wrk loads it)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.permissions import Server, bench_settings, drop, login, prepare  # noqa: E402
from permdev.embedded import services  # noqa: E402


def main() -> None:
    with services() as (admin_db, redis_url):
        url = asyncio.run(prepare(admin_db))
        settings = bench_settings(url, redis_url, prod=False)
        try:
            with Server(
                settings,
                **{
                    k: v
                    for k, v in os.environ.items()
                    if k.startswith(("PERMISSIONS_", "GC_", "RESPONSE_", "GRAPHQL_"))
                },
            ) as server:
                token = login(server.url)
                assert server.proc is not None
                print(
                    f"URL={server.url}\nPID={server.proc.pid}\nTOKEN={token}",
                    flush=True,
                )
                while server.proc.poll() is None:
                    time.sleep(1)
        finally:
            asyncio.run(drop(admin_db, url))


if __name__ == "__main__":
    main()
