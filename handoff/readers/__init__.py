"""Badge readers: each turns a physical (or simulated) reader into presence edges for the runtime."""
