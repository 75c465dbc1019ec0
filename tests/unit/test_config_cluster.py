"""The optional [cluster] section (issue 17): defaults, validation, and no effect on `run`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from depthkeeper.supervisor.service.config import ClusterConfig, ConfigError, config_from_mapping

BASE = {"venue": {"url": "ws://127.0.0.1:1/ws", "snapshot_url": "http://127.0.0.1:1/depth"}}


def test_defaults_match_the_interface() -> None:
    cluster = config_from_mapping(BASE).cluster
    assert cluster == ClusterConfig()
    assert (cluster.redis_url, cluster.name, cluster.lease_ttl_s) == ("redis://127.0.0.1:6379/0", "depthkeeper", 3.0)
    assert cluster.redis_cluster is False
    on = config_from_mapping({**BASE, "cluster": {"redis_cluster": True, "redis_url": "redis://10.0.0.1:7000"}})
    assert on.cluster.redis_cluster is True


def test_values_are_read() -> None:
    cfg = config_from_mapping({**BASE, "cluster": {"redis_url": "redis://127.0.0.1:7000/1", "name": "prod-eu",
                                                   "lease_ttl_s": 2, "slot_size": 200}})
    assert (cfg.cluster.redis_url, cfg.cluster.name, cfg.cluster.lease_ttl_s, cfg.cluster.slot_size) == \
        ("redis://127.0.0.1:7000/1", "prod-eu", 2.0, 200)


@pytest.mark.parametrize(("table", "needle"), [
    ({"lease_s": 3}, "[cluster] lease_s: unknown key"),
    ({"lease_ttl_s": 0.0}, "[cluster] lease_ttl_s: out of range"),
    ({"slot_size": 0}, "[cluster] slot_size: out of range"),
    ({"slot_size": "10"}, "[cluster] slot_size: must be int"),
    ({"redis_url": "http://x"}, "[cluster] redis_url: must start with redis://"),
    ({"name": "a{b}"}, "[cluster] name:"),
    ({"redis_cluster": True, "redis_url": "redis://127.0.0.1:7000/2"}, "a Redis Cluster has database 0 only"),
    ({"redis_cluster": "yes"}, "[cluster] redis_cluster: must be bool"),
])
def test_bad_values_name_the_key(table: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_mapping({**BASE, "cluster": table}, source="x.toml")
    assert needle in str(err.value) and "x.toml" in str(err.value)


def test_the_single_process_never_imports_redis() -> None:
    code = ("import sys; from depthkeeper.supervisor.cli.main import _parser; _parser(); "
            "import depthkeeper.supervisor.service, depthkeeper.supervisor.cli.run; "
            "assert 'redis' not in sys.modules, 'redis imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
