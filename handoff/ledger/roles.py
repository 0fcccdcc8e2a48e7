"""The console's roles, apart from the accounts they belong to so that the command line can offer
them without loading the database layer."""

from typing import Final

ROLES: Final = ("viewer", "admin")
