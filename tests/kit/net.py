"""The kit's net: free loopback ports, and waiting for a listener.

It lives in `handoff.testing.net`, which the demo and the benches share.
"""

from handoff.testing.net import free_tcp_port, free_udp_port, wait_listening

__all__ = ["free_tcp_port", "free_udp_port", "wait_listening"]
