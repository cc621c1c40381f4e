"""Step 1: turn a raw request into validated, versioned ControlTokens."""
