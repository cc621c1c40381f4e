"""Pydantic contracts shared by the SDK, workflows and activities. Pure data, no I/O."""
