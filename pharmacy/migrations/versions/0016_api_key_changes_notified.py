"""a change to an API key is notified on PostgreSQL, so that processes may keep the keys they have read

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

from pharmacy.key_cache import trigger_sql

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has no channel: keys are read on every request there
        for statement in trigger_sql():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS api_keys_changed ON api_keys")
        op.execute("DROP FUNCTION IF EXISTS notify_api_keys_changed()")
