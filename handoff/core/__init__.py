"""The custody/session state machine: pure functions of (state, input, time).

Nothing in this package reads a clock, touches a file or starts a thread. The runtime owns
one `State`, feeds it inputs with the time they happened, and persists what comes back.
"""
