"""The shipped deployments (``demo.toml``, ``alltick.toml``, ``chaos.toml``), installed as package data.

``depthkeeper run --config conf/demo.toml`` reads ``./conf/demo.toml`` when there is one and this
package's copy otherwise (``depthkeeper.supervisor.service.config.resolve_config_path``).
"""
