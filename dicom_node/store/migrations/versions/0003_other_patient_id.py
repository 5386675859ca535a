"""Other Patient IDs (PS3.3 C.7.1.1) of each patient, for C-FIND: table ``other_patient_id``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "other_patient_id",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("id_type", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["patient_pk"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_pk", "patient_id", "issuer"),
    )
    op.create_index(op.f("ix_other_patient_id_patient_id"), "other_patient_id", ["patient_id"], unique=False)
    op.create_index(op.f("ix_other_patient_id_patient_pk"), "other_patient_id", ["patient_pk"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_other_patient_id_patient_pk"), table_name="other_patient_id")
    op.drop_index(op.f("ix_other_patient_id_patient_id"), table_name="other_patient_id")
    op.drop_table("other_patient_id")
