"""Simulated badges, so anyone can tap without hardware: tests, demos, biomed training."""
