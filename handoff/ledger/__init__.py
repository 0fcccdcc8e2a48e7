"""The ledger (docs/ledger.md): every appliance's events become the custody record."""
