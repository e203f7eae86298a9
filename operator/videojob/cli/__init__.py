"""`kubectl videojob`: the kubectl plugin (needs the `cli` extra: click, rich)."""
