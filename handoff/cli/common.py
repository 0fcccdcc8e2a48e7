"""What several commands share: the `-c` option and opening the configured database."""

from __future__ import annotations

import argparse
import sqlite3

from handoff import db
from handoff.config import Config, load_config, resolve_config_path


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", help="config file (default: $HANDOFF_CONFIG, then /etc/handoff/handoff.toml)"
    )


def config_from(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config))


def open_database(config: Config) -> sqlite3.Connection:
    """The database, checked for corruption first, so a damaged file is one line rather than a traceback."""
    return db.connect_checked(config.appliance.data_dir)
