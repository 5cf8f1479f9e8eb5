"""Tasks: their lifecycle (start, status, resume, leases, shutdown), the journal in storage, the
manifest, and the work of each kind (backup, restore, export, cleanup).
May import: the shared base, engine.language, engine.storage and engine.saas."""
