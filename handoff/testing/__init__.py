"""Real parts for exercising handoff end to end: the test suite's kit, the demo and the benches
share them, so they live in the package rather than under tests/.

Nothing here is imported by the appliance, the agent or the ledger.
"""
