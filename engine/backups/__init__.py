"""The operator's side of stored backups (``engine backups``): find them under a prefix
(catalog), look into one (layout: its resources as a tree, its sizes), check it
(verification), read it out with no engine (extraction), on any storage the server may use
(access), and say what was found (text, progress). It reads backups with the tasks' own
manifest and object readers, and writes nothing but an export's plain copy.
May import: the shared base, engine.language, engine.storage and engine.tasks.
"""
