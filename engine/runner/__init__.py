"""``engine run``: the module author's whole module API in process, with no server and no port.
The module's own Starlette app (engine.api.app) is called as an ASGI application, so request
checks, wire shapes, tasks, status and errors are exactly what ``engine serve`` answers; around
it: the auth settings (a file, ENGINE_SETTINGS_* or the auth form asked on a terminal), items
named as a person reads them, task progress, and text for people or JSON for machines.
May import: the shared base, engine.language, engine.storage, engine.tasks, engine.api and
engine.backups (``verify`` is ``engine backups verify``).
"""
