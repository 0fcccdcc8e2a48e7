"""The agent on the attached device: it ends the session and proves it."""
