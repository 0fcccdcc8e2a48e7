"""handoff: the software of a badge-tap custody and session handoff appliance."""

__version__ = "0.1.0"
