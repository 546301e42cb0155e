"""The IR, its passes and code generation."""
