"""The JSON API (``/api/v1``) on FastAPI.

``routes.routes(view, commands)`` mounts it for the daemon's server.  Modules: ``app``
(the FastAPI application), ``auth`` (bearer tokens as dependencies), ``errors`` (problem
JSON, the guard middleware, request bodies), ``openapi`` (the document), ``views`` (the
PDPA rules: what an answer shows), ``models`` (pydantic models) and one module per
resource group: ``reads`` (schools, devices, incidents), ``tickets``, ``maintenance``.
To add an operation: a model in ``models``, a function with ``Reader``/``Writer`` in the
resource's module (writes call ``caller.commands``), its ``responses=problems(...)``.
"""
