"""Step 4: master raw audio to a delivery loudness and write the delivery formats."""
