"""De-identification keys (:mod:`dicom_node.deid.keys`): each destination's secret and every
pseudonym handed out with its original, tables ``deid_secret`` and ``deid_pseudonym``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deid_secret",
        sa.Column("destination", sa.String(length=128), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("destination"),
    )
    op.create_table(
        "deid_pseudonym",
        sa.Column("destination", sa.String(length=128), nullable=False),
        sa.Column("pseudonym", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("original", sa.String(length=128), nullable=False),
        sa.Column("identity", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("destination", "pseudonym"),
    )


def downgrade() -> None:
    op.drop_table("deid_pseudonym")
    op.drop_table("deid_secret")
