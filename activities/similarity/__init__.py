"""Step 5: fingerprint the output, check quality, and decide whether a human must review it."""
