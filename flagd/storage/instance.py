"""The identity of this flagd installation: one row, made by the first migration, kept across restarts."""

from __future__ import annotations

from flagd.storage.types import Connection


async def instance_id(conn: Connection) -> str:
    """The installation's id as text; the schema must be at least at migration 1."""
    found: str = await conn.fetchval("SELECT instance_id::text FROM instance")
    return found
