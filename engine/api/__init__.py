"""The module HTTP API: the Starlette app, the endpoint table, the wire shapes of
spec/module-api.md, and discovery (roots, resources, backup and restore configuration).
May import: every layer below it (base, language, storage, saas, tasks)."""
