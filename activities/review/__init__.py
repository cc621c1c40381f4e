"""Step 6: the review policy, the recording of review decisions and the review queue's store."""
