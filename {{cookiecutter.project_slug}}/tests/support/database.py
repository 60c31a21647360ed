"""Point a subprocess (a worker started by a test) at the database the test runs on."""

from urllib.parse import quote

from django.db import connection


def database_url() -> str:
    """DATABASE_URL of the current test database (SQLite file or PostgreSQL), for DATABASE_URL=..."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor != "postgresql":
        raise NotImplementedError(f"no URL form for {connection.vendor}")
    credentials = f"{quote(db['USER'], safe='')}:{quote(db['PASSWORD'] or '', safe='')}@" if db["USER"] else ""
    return f"postgres://{credentials}{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
