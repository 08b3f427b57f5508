"""The consortium's figures at a glance: where prescriptions are filled, how fast, stock-outs, expiry, savings."""
