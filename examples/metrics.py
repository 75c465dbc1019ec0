"""Serve Prometheus metrics and a health check, and scrape them once a second.

    python examples/metrics.py [--port 9108] [--duration 5]

Point Prometheus at ``http://127.0.0.1:PORT/metrics`` and import ``examples/grafana/depthkeeper.json``
into Grafana (it asks for your Prometheus data source). ``/healthz`` answers 200 or 503 with
``{"ok": ..., "problems": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request

import attrs

from depthkeeper.supervisor import BookService, load_config, resolve_config_path

SHOWN = ("depthkeeper_build_info", "depthkeeper_connection_up", "depthkeeper_book_status",
         "depthkeeper_diffs_applied_total", "process_resident_memory_bytes", "process_cpu_seconds_total")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:  # 503: unhealthy, still a JSON answer
        return exc.code, exc.read().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/demo.toml", help="deployment file (conf/NAME.toml: the shipped one)")
    parser.add_argument("--port", type=int, default=9108, help="metrics port on 127.0.0.1 ([metrics] port)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to scrape for")
    args = parser.parse_args()
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1..65535 (in a config file 0 means off), got {args.port}")
    cfg = load_config(resolve_config_path(args.config)[0])
    cfg = attrs.evolve(cfg, metrics=attrs.evolve(cfg.metrics, port=args.port))
    with BookService.start(cfg) as svc:
        print("metrics:", svc.metrics.url, " health:", svc.metrics.health_url)
        svc.wait_live(timeout=10)
        pause = threading.Event()
        deadline = time.monotonic() + args.duration
        while True:
            status, text = get(svc.metrics.url)
            lines = [line for line in text.splitlines() if line.startswith(SHOWN)]
            print(f"/metrics {status}: {len(text.splitlines())} lines, e.g.")
            print("\n".join(f"  {line}" for line in lines[:12]))
            status, body = get(svc.metrics.health_url)
            print(f"/healthz {status}: {json.loads(body)}")
            if time.monotonic() >= deadline:
                break
            pause.wait(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
