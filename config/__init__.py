"""Business-unit configuration: the schema, the loader and the ``python -m config`` CLI."""
