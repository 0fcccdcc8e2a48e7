"""Why a broker connection failed or ended, as types: the publisher retries each with backoff,
and its message is what the log and `handoff status` say."""

from __future__ import annotations


class LinkError(Exception):
    pass


class CannotConnect(LinkError):
    """TCP or TLS failed before MQTT began: the network, a firewall, mqtt.url, certificates."""


class ConnectionRefused(LinkError):
    """The broker answered CONNECT with a failure, or never answered it."""


class ConnectionLost(LinkError):
    pass


class EventRefused(LinkError):
    """A negative PUBACK for an event: order holds, so the outbox waits behind it."""


class PublishNotQueued(LinkError):
    """paho would not take a publish (its socket is gone): the connection is over."""


class OutboxUnreadable(LinkError):
    pass


class RewindNotRecorded(LinkError):
    """The broker had seen a higher seq, and renumbering the unsent events failed: nothing may
    be published until it succeeds, or a seq would be published twice."""
