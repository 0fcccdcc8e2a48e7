"""PIV card authentication (PKI-CAK, NIST SP 800-116): a badge proven by its key, not its copyable UID."""
