"""The imperative shell: one thread owns the state; readers, outbox, MQTT and GPIO sit at the edge."""
