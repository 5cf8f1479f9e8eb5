"""The author's tooling: ``engine init``, a new module from a template (scaffold) or drafted
from the SaaS's API description (openapi reads it, listings finds the resource tree, paging
guesses pagination, signin drafts credentials, draft assembles module.yaml, yamltext writes it
with its comments), and the command itself (commands).
May import: the shared base, engine.language and engine.saas (to fetch a description by URL).
"""
