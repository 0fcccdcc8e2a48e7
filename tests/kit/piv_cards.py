"""The kit's piv_cards: a throwaway PIV PKI and cards.

It lives in `handoff.testing.piv_cards`, which the demo and the benches share.
"""

from handoff.testing.piv_cards import NOW, PivCa, applet, write_card

__all__ = ["NOW", "PivCa", "applet", "write_card"]
