"""The module engine: one YAML file per SaaS module, one generic module HTTP API.

Packages by layer, each importing only from the layers below it (tests/test_layers.py checks):

    cli, serving, __main__   entry points: may import anything
    workbench/               `engine dev`: the author's page beside the module API
    api/     backups/        the HTTP API: app, routes, wire shapes, discovery / `engine
                             backups`: stored backups listed, shown, verified, read out
    tasks/                   backup, restore, export, cleanup: lifecycle, journal, manifest
    saas/    storage/        the outbound SaaS client / backup storage on fsspec (side by side:
                             neither imports the other)
    language/                the module definition: YAML, schema, checks, templates, hooks, forms
    (this folder)            what every layer shares: errors, settings, clock, logs, redaction,
                             concurrently, ctx
"""
