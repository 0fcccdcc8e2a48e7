"""The ledger (SPEC section 10): every appliance's events become the custody record."""
