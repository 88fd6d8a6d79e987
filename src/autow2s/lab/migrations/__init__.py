"""The lab schema's Alembic migrations (env.py, versions/); configured in code by lab/schema.py."""
