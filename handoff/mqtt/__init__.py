"""MQTT delivery: topics, client set-up and the publisher that drains the outbox."""
