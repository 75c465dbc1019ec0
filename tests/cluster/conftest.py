"""Cluster suites: each test gets its own redis-server on a free loopback port (never 6379).

A test that needs Redis is skipped, with the reason, only when redis-server is not installed
(.ci/run installs it, so CI runs them all).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from depthkeeper.cluster.localredis import LocalRedis, LocalRedisCluster, redis_server_path


@pytest.fixture
def redis_server() -> Iterator[LocalRedis]:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed: apt-get install -y redis-server (.ci/run does)")
    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster_nodes() -> Iterator[LocalRedisCluster]:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed: apt-get install -y redis-server (.ci/run does)")
    with LocalRedisCluster(3) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(redis_cluster_nodes: LocalRedisCluster) -> LocalRedisCluster:
    """A 3-node Redis Cluster (three redis-servers on free loopback ports, slots split evenly), empty:
    started once per module (forming one takes ~2 s), emptied for each test."""
    redis_cluster_nodes.flush()
    return redis_cluster_nodes
