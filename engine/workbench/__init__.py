"""``engine dev``: the module author's workbench, a web page served beside the module API on
127.0.0.1 only. The module's files are polled and reloaded as they change (a broken save keeps
the last good module serving and shows its located problems); the page signs in through the
module's own auth form and walks its resource tree through the module API itself.
May import: the shared base, engine.language, engine.storage, engine.saas, engine.tasks,
engine.api and engine.runner (the module's app driven in process).
"""
