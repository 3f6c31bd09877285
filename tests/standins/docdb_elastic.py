"""A DocumentDB Elastic Clusters API stand-in (moto has no ``docdb-elastic``): ListClusters,
GetCluster and ListTagsForResource over the protocol botocore speaks to the service
(rest-json: ``GET /clusters``, ``GET /cluster/{clusterArn}``, ``GET /tags/{resourceArn}``),
each checked against botocore's shipped service model.

- Requests: the operation from the method and path (the model's ``requestUri``), its
  parameters from the path and query string (``locationName``), validated with botocore's
  ParamValidator against the operation's input shape, plus the model's ``max`` bound on
  ``maxResults`` (1 to 100). A request that fails is answered ValidationException (HTTP
  400) and kept in ``refused`` so a test can assert there were none.
- Answers: the documented output shapes, each validated against the operation's output
  shape before it is sent (a test's table that does not follow the model fails loudly
  here, not in the product). ListClusters pages with ``maxResults`` and ``nextToken``.
- ``clusters``: the GetCluster answers (see ``elastic_cluster``), ``tags``: ARN -> tags;
  an unknown ARN is answered ResourceNotFoundException (HTTP 404), as AWS does.
- ``deleted``: ARNs still listed by ListClusters whose GetCluster and ListTagsForResource
  answer ResourceNotFoundException (deleted between the list and the next call).
- ``faults``: operation -> (HTTP status, error code), answered to every request of it.
- ``calls``: requests per operation.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session
from botocore.validate import ParamValidator

from tests.standins.http import HttpStandin

ROUTES = (
    ("ListClusters", re.compile(r"/clusters")),
    ("GetCluster", re.compile(r"/cluster/(?P<clusterArn>[^/]+)")),
    ("ListTagsForResource", re.compile(r"/tags/(?P<resourceArn>[^/]+)")),
)
MAX_RESULTS = 100  # ListClusters' maxResults bound in the model


def elastic_cluster(
    name: str,
    *,
    account: str,
    region: str,
    cluster_id: str,
    shard_count: int = 2,
    shard_capacity: int = 2,
    status: str = "ACTIVE",
) -> dict[str, Any]:
    """A cluster as GetCluster answers it (every member the model requires)."""
    return {
        "adminUserName": "admin",
        "authType": "SECRET_ARN",
        "clusterArn": f"arn:aws:docdb-elastic:{region}:{account}:cluster/{cluster_id}",
        "clusterEndpoint": f"{name}-{account}.{region}.docdb-elastic.amazonaws.com",
        "clusterName": name,
        "createTime": "2026-01-05T10:00:00.000Z",
        "kmsKeyId": "AWS_OWNED_KMS_KEY",
        "preferredMaintenanceWindow": "sun:03:00-sun:03:30",
        "shardCapacity": shard_capacity,
        "shardCount": shard_count,
        "shardInstanceCount": 2,
        "status": status,
        "subnetIds": ["subnet-0a1b2c3d"],
        "vpcSecurityGroupIds": ["sg-0a1b2c3d"],
        "backupRetentionPeriod": 1,
    }


class DocDBElasticServer(HttpStandin):
    def __init__(self) -> None:
        self.model = botocore.session.get_session().get_service_model("docdb-elastic")
        self.clusters: list[dict[str, Any]] = []
        self.tags: dict[str, dict[str, str]] = {}
        self.faults: dict[str, tuple[int, str]] = {}
        self.deleted: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.refused: list[str] = []
        self._lock = threading.Lock()
        super().__init__()

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_DOCDB_ELASTIC": self.url}

    def reset(self) -> None:
        self.clusters, self.tags, self.faults, self.refused = [], {}, {}, []
        self.deleted = set()
        with self._lock:
            self.calls.clear()

    def calls_snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)

    # --- serving --------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        url = urlsplit(handler.path)
        route = next(
            ((op, m) for op, pattern in ROUTES if (m := pattern.fullmatch(url.path))), None
        )
        if route is None or handler.command != "GET":
            self._error(handler, 400, "ValidationException", f"not served: {handler.path}")
            return
        operation, match = route
        with self._lock:
            self.calls[operation] += 1
        params = self._params(operation, match.groupdict(), parse_qs(url.query))
        problems = self._problems(params, self.model.operation_model(operation).input_shape)
        if problems:
            with self._lock:
                self.refused.append(f"{operation}: {problems}")
            self._error(handler, 400, "ValidationException", problems)
            return
        if operation in self.faults:
            status, code = self.faults[operation]
            self._error(handler, status, code, f"{code} (stand-in fault)")
            return
        answer = self._answer(operation, params)
        if answer is None:
            arn = params.get("clusterArn") or params.get("resourceArn")
            self._error(handler, 404, "ResourceNotFoundException", f"{arn} not found")
            return
        output = self.model.operation_model(operation).output_shape
        assert output is not None  # every operation served has an output shape
        report = ParamValidator().validate(answer, output)
        if report.has_errors():
            # The table a test built does not follow the model: the test's bug, kept in
            # ``refused`` and never sent as if AWS could answer it.
            with self._lock:
                self.refused.append(f"{operation} answer: {report.generate_report()}")
            self._error(handler, 500, "InternalServerException", "answer off the model")
            return
        self._reply(handler, 200, json.dumps(answer).encode())

    def _params(
        self, operation: str, path: Mapping[str, str], query: Mapping[str, list[str]]
    ) -> dict[str, Any]:
        """The request as the input shape names it: path and query members by their
        locationName, integers read as integers."""
        shape = self.model.operation_model(operation).input_shape
        params: dict[str, Any] = {}
        if shape is None:
            return params
        for name, member in shape.members.items():
            where = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if where == "uri" and wire in path:
                params[name] = unquote(path[wire])
            elif where == "querystring" and wire in query:
                raw = query[wire][0]
                params[name] = int(raw) if member.type_name == "integer" else raw
        return params

    @staticmethod
    def _problems(params: Mapping[str, Any], shape: Any) -> str:
        if shape is None:
            return ""
        report = ParamValidator().validate(dict(params), shape)
        problems = [report.generate_report()] if report.has_errors() else []
        limit = params.get("maxResults")
        if isinstance(limit, int) and limit > MAX_RESULTS:
            problems.append(f"maxResults: {limit}, at most {MAX_RESULTS}")
        return "; ".join(problems)

    def _answer(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        by_arn = {c["clusterArn"]: c for c in self.clusters if c["clusterArn"] not in self.deleted}
        if operation == "ListClusters":
            size = int(params.get("maxResults") or MAX_RESULTS)
            start = int(params.get("nextToken") or 0)
            page = self.clusters[start : start + size]
            answer: dict[str, Any] = {
                "clusters": [
                    {k: c[k] for k in ("clusterArn", "clusterName", "status")} for c in page
                ]
            }
            if start + size < len(self.clusters):
                answer["nextToken"] = str(start + size)
            return answer
        if operation == "GetCluster":
            cluster = by_arn.get(params["clusterArn"])
            return None if cluster is None else {"cluster": cluster}
        arn = params["resourceArn"]
        if arn not in by_arn:
            return None
        return {"tags": dict(self.tags.get(arn, {}))}

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        self._reply(handler, status, body, {"x-amzn-ErrorType": code})

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
