"""The kit's config: appliance configs laid out like /etc/handoff.

It lives in `handoff.testing.config`, which the demo and the benches share.
"""

from handoff.testing.config import DEVICE, PREFIX, READER, SECRET, SITE, Layout, config_text

__all__ = ["DEVICE", "PREFIX", "READER", "SECRET", "SITE", "Layout", "config_text"]
