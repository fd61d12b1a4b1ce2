"""The ledger's schema history: Alembic revisions, applied by `collect upgrade` (collect.ledger.upgrade)."""
