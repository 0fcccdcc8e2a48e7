"""`handoff doctor`: self-tests that tell biomed staff what is wrong and how to fix it."""
