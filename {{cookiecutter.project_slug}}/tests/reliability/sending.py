"""Sending tasks to a scenario's own broker (broker.py), routed as the project routes them."""

from abc import ABC, abstractmethod
from typing import Any

from config.celery_app import app as celery_app


class Sending(ABC):
    """What a scenario's broker sends with: its URL, and kombu's ssl options for it (None: no TLS)."""

    ssl: dict[str, Any] | None = None

    @property
    @abstractmethod
    def url(self) -> str:
        """The broker's URL, as a worker of the scenario gets it."""

    def send(self, name: str, *, args: tuple | list = (), kwargs: dict | None = None, **options) -> str:
        """Send a task by name; return its id."""
        return self.send_many(name, [args], kwargs=kwargs, **options)[0]

    def send_many(self, name: str, arguments: list[tuple | list], *, kwargs: dict | None = None, **options):
        """Send one task per item of ``arguments`` over one connection; return their ids."""
        with celery_app.connection_for_write(self.url, ssl=self.ssl) as connection:
            return [
                celery_app.send_task(name, args=args, kwargs=kwargs, connection=connection, **options).id
                for args in arguments
            ]
