"""Shared pytest configuration: the sandbox control plane fixtures (sandbox, api_client, namespace)."""

pytest_plugins = ["mimo_sandbox.pytest_plugin"]
