"""The agent on the attached device (SPEC section 8): it ends the session and proves it."""
