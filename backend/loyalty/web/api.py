"""The pages' client of the API: the same application, called in-process over ASGI with the
signed-in user's bearer token, so a page can do nothing its user could not do with curl."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request


@dataclass
class ApiProblem(Exception):
    """The API said no: its problem document's status, stable `code` and detail."""

    status: int
    code: str
    detail: str

    def __str__(self) -> str:
        return self.detail


class Api:
    """Calls the API as one user (`token`, or none to sign in)."""

    def __init__(self, client: httpx.AsyncClient, token: str | None) -> None:
        self.client, self.token = client, token

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None and v != ""}
        return _answer(await self.client.get(path, params=query, headers=self._headers()))

    async def send(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> Any:
        """A write; `key` is the form's idempotency key (a resubmitted form repeats its answer)."""
        headers = self._headers(key or uuid.uuid4().hex)
        return _answer(await self.client.request(method, path, json=body, headers=headers))

    async def text(self, path: str, **params: Any) -> str:
        response = await self.client.get(path, params=params, headers=self._headers())
        _answer(response)
        return response.text


def _answer(response: httpx.Response) -> Any:
    if response.status_code == 204:
        return None
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        raise ApiProblem(
            response.status_code, str(problem.get("code", "error")), str(problem.get("detail", response.text))
        )
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


@asynccontextmanager
async def api_of(request: Request, token: str | None) -> AsyncIterator[Api]:
    """An API client for this page's request: the caller's address and host are passed on (the
    API limits sign-in attempts per address, and names its own host in sign-in messages)."""
    client_address = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
    transport = httpx.ASGITransport(app=request.app, client=client_address, raise_app_exceptions=False)
    base = f"{request.url.scheme}://{request.url.netloc}"
    async with httpx.AsyncClient(transport=transport, base_url=base, timeout=60) as client:
        yield Api(client, token)
