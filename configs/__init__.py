"""Hydra configuration tree; installed as the package ``vidgen.configs`` (see pyproject.toml)."""
