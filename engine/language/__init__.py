"""The module definition language: the YAML document with its positions, the JSON Schema, the
checks behind `engine validate`, the loader and the typed definition, templates, hooks, forms and
record selectors. May import: the shared base (engine/*.py) only."""
