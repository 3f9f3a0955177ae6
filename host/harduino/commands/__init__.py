"""Subcommands of the `harduino` CLI, one module per group."""
