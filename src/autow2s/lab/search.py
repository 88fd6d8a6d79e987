"""Full-text search over findings behind a small adapter: the one place with dialect-specific SQL.

SQLite gets an FTS5 table, PostgreSQL a generated tsvector column with a GIN index; any other
database falls back to portable LIKE matching. Their schema comes from lab/migrations (0001 made
the FTS5 table, 0002 the tsvector), so setup() has nothing left to create.
"""

from __future__ import annotations

import re
from typing import Protocol

from sqlalchemy import Connection, Engine, and_, or_, select, text

from autow2s.lab.models import Finding

MAX_TERMS = 16


def terms_of(query: str) -> list[str]:
    """Words only: user input never reaches a query language, so no query is a syntax error."""
    return re.findall(r"\w+", query.lower())[:MAX_TERMS]


class SearchAdapter(Protocol):
    def setup(self) -> None: ...

    def index(self, conn: Connection, finding_id: int, title: str, body: str, tags: str) -> None: ...

    def search(self, conn: Connection, query: str, limit: int) -> list[int]:
        """Finding ids, best match first."""
        ...


class SqliteFts5Search:
    """findings_fts(title, body, tags), porter-stemmed; ranked by bm25 with title 5, tags 3, body 1."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def setup(self) -> None:
        return None  # findings_fts is migration 0001's

    def index(self, conn: Connection, finding_id: int, title: str, body: str, tags: str) -> None:
        conn.execute(text("INSERT INTO findings_fts(rowid, title, body, tags) VALUES (:id, :title, :body, :tags)"),
                     {"id": finding_id, "title": title, "body": body, "tags": tags})

    def search(self, conn: Connection, query: str, limit: int) -> list[int]:
        terms = terms_of(query)
        if not terms:
            return []
        match = " ".join('"' + term.replace('"', "") + '"' for term in terms)
        rows = conn.execute(text("SELECT rowid FROM findings_fts WHERE findings_fts MATCH :match "
                                 "ORDER BY bm25(findings_fts, 5.0, 1.0, 3.0) LIMIT :limit"),
                            {"match": match, "limit": limit})
        return [int(row[0]) for row in rows]


class PostgresFullTextSearch:
    """findings.search_vector: title (weight A), tags (B) and body (C), english-stemmed, GIN-indexed.

    The column is generated, so index() has nothing to do. The terms reach plainto_tsquery as plain
    words, so user input is never tsquery syntax; every term must match, as with FTS5.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def setup(self) -> None:
        return None  # findings.search_vector and its index are migration 0002's

    def index(self, conn: Connection, finding_id: int, title: str, body: str, tags: str) -> None:
        return None

    def search(self, conn: Connection, query: str, limit: int) -> list[int]:
        terms = terms_of(query)
        if not terms:
            return []
        rows = conn.execute(text("SELECT id FROM findings, plainto_tsquery('english', :words) AS query "
                                 "WHERE search_vector @@ query "
                                 "ORDER BY ts_rank(search_vector, query) DESC, id DESC LIMIT :limit"),
                            {"words": " ".join(terms), "limit": limit})
        return [int(row[0]) for row in rows]


class LikeSearch:
    """Portable fallback: every term must appear in the title, body or tags."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def setup(self) -> None:
        return None

    def index(self, conn: Connection, finding_id: int, title: str, body: str, tags: str) -> None:
        return None

    def search(self, conn: Connection, query: str, limit: int) -> list[int]:
        terms = terms_of(query)
        if not terms:
            return []
        clauses = [or_(Finding.title.ilike(f"%{t}%"), Finding.body.ilike(f"%{t}%"), Finding.tags.ilike(f"%{t}%"))
                   for t in terms]
        rows = conn.execute(select(Finding.id).where(and_(*clauses)).order_by(Finding.id.desc()).limit(limit))
        return [int(row[0]) for row in rows]


def make_search(engine: Engine) -> SearchAdapter:
    if engine.dialect.name == "sqlite":
        return SqliteFts5Search(engine)
    if engine.dialect.name == "postgresql":
        return PostgresFullTextSearch(engine)
    return LikeSearch(engine)

