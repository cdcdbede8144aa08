"""Built-in relubench plugins: one sub-package per paper plus common."""
