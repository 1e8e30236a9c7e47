"""The production server: `python -m api.serve [--host H] [--port P] [--workers N]`.

uvicorn runs the app in WORKERS processes (default: the cores this process may
run on), so that one Python process is no longer the ceiling (bench/README.md).
Each worker is a whole instance of the app: its own pools, its own change
stream (permcore/stream.py: one reader name per host, applied to the shared
Redis) and keeper (one pass per interval across all of them: a Redis lease).
Before the workers start, PROMETHEUS_MULTIPROC_DIR is set to a fresh directory,
so that `/metrics` adds up every worker's values (permbase/metrics.py).
Settings are checked first: a wrong one ends it with one line naming it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import uvicorn

from permbase.settings import settings_or_exit


def main(argv: list[str] | None = None) -> None:
    settings = settings_or_exit("permgraph")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server in a container
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=settings.workers)
    args = parser.parse_args(argv)
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="permgraph-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=True,
            access_log=False,
            log_level="warning",
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
