"""A Performance Insights API stand-in (moto has no ``pi``): GetResourceMetrics over the
protocol botocore speaks to the service (its model lists ``smithy-rpc-v2-cbor`` and
``json``; botocore prefers JSON 1.1), each request checked against that model and answered
in the documented response shape.

- Requests: the operation from ``X-Amz-Target``, the body read by botocore's own JSON parser
  against the operation's input shape (timestamps become datetimes), validated with
  botocore's ParamValidator, plus the model's ``max`` bounds
  (ParamValidator checks minimums only): 1 to 15 MetricQueries, a GroupBy Limit of 1 to 25.
  A request that fails is answered InvalidArgumentException (HTTP 400) with the problems,
  and kept in ``refused`` so a test can assert there were none.
- Answers: GetResourceMetrics as the API reference describes it: ``AlignedStartTime``,
  ``AlignedEndTime``, ``Identifier``, and a ``MetricList`` per query: first the metric's
  total (no dimensions), then one item per dimension group (at most Limit, the largest
  first) with its ``Dimensions`` (``db.wait_event.type`` / ``.name``; ``db.sql_tokenized.id``
  / ``.db_id`` / ``.statement``) and one data point per period of the window, oldest first.
  The newest point carries the group's configured value; older ones carry half of it, and
  a group may leave the newest point's Value out (a minute without load).
- ``resources``: Identifier (DbiResourceId) -> its load; an unknown Identifier is answered
  NotAuthorizedException, as AWS answers a resource the caller may not read or that has
  Performance Insights off.
- ``calls``: requests per operation.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import botocore.session
from botocore.parsers import JSONParser
from botocore.serialize import JSONSerializer
from botocore.validate import ParamValidator

from tests.standins.http import HttpStandin

TARGET_PREFIX = "PerformanceInsightsv20180227"


@dataclass(frozen=True)
class WaitEvent:
    type: str
    name: str
    load: float


@dataclass(frozen=True)
class Statement:
    id: str
    statement: str
    load: float
    db_id: str = "db-0"


@dataclass
class Resource:
    wait_events: list[WaitEvent] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    # Leave the newest point's Value out for these group names (wait event name or sql id).
    quiet_now: set[str] = field(default_factory=set)


def json_error(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": message}).encode()


def _bounds(value: Any, shape: Any, path: str, problems: list[str]) -> None:
    """The model's ``max`` bounds, which botocore's ParamValidator leaves to the service."""
    limit = shape.metadata.get("max")
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _bounds(value[name], member, f"{path}.{name}", problems)
    elif shape.type_name == "list" and isinstance(value, list):
        if limit is not None and len(value) > limit:
            problems.append(f"{path}: {len(value)} items, at most {limit}")
        for index, item in enumerate(value):
            _bounds(item, shape.member, f"{path}[{index}]", problems)
    elif (
        shape.type_name == "integer" and isinstance(value, int) and limit is not None
    ) and value > limit:
        problems.append(f"{path}: {value}, at most {limit}")


class PerformanceInsightsServer(HttpStandin):
    http_methods = ("POST",)

    def __init__(self) -> None:
        self.model = botocore.session.get_session().get_service_model("pi")
        self.resources: dict[str, Resource] = {}
        self.calls: Counter[str] = Counter()
        self.refused: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_PI": self.url}

    # --- serving --------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b"{}"
        prefix, _, operation = (handler.headers.get("X-Amz-Target") or "").partition(".")
        with self._lock:
            self.calls[operation] += 1
        if prefix != TARGET_PREFIX or operation not in self.model.operation_names:
            self._refuse(handler, f"not a Performance Insights request: {prefix}.{operation}")
            return
        operation_model = self.model.operation_model(operation)
        input_shape, output_shape = operation_model.input_shape, operation_model.output_shape
        assert input_shape is not None and output_shape is not None
        params = dict(
            JSONParser().parse({"body": body, "headers": {}, "status_code": 200}, input_shape)
        )
        params.pop("ResponseMetadata", None)
        report = ParamValidator().validate(params, input_shape)
        problems = [report.generate_report()] if report.has_errors() else []
        _bounds(params, input_shape, "input", problems)
        if problems:
            self._refuse(handler, "; ".join(problems))
            return
        with self._lock:
            self.requests.append(params)
        if operation != "GetResourceMetrics":
            self._refuse(handler, f"{operation} is not served by this stand-in")
            return
        resource = self.resources.get(params["Identifier"])
        if resource is None:
            message = f"The resource {params['Identifier']} is not authorized or does not exist"
            self._reply(handler, 400, json_error("NotAuthorizedException", message))
            return
        serialized: dict[str, Any] = {}
        # The serializer's own walk of a shape (typed stubs do not show it).
        serialize: Any = JSONSerializer()._serialize  # type: ignore[attr-defined]
        serialize(serialized, self._metrics(params, resource), output_shape)
        self._reply(handler, 200, json.dumps(serialized).encode())

    def _metrics(self, params: Mapping[str, Any], resource: Resource) -> dict[str, Any]:
        period = int(params.get("PeriodInSeconds") or 60)
        start = int(params["StartTime"].timestamp()) // period * period
        end = int(params["EndTime"].timestamp()) // period * period
        stamps = [dt.datetime.fromtimestamp(t, dt.UTC) for t in range(start, end, period)]
        metric_list: list[dict[str, Any]] = []
        for query in params["MetricQueries"]:
            group = (query.get("GroupBy") or {}).get("Group")
            limit = (query.get("GroupBy") or {}).get("Limit", 10)
            groups: list[tuple[str, dict[str, str], float]] = []
            if group == "db.wait_event":
                groups = [
                    (e.name, {"db.wait_event.type": e.type, "db.wait_event.name": e.name}, e.load)
                    for e in resource.wait_events
                ]
            elif group == "db.sql_tokenized":
                groups = [
                    (
                        s.id,
                        {
                            "db.sql_tokenized.id": s.id,
                            "db.sql_tokenized.db_id": s.db_id,
                            "db.sql_tokenized.statement": s.statement,
                        },
                        s.load,
                    )
                    for s in resource.statements
                ]
            groups.sort(key=lambda g: -g[2])
            groups = groups[:limit]
            total = sum(load for _, _, load in groups)
            metric_list.append(
                {"Key": {"Metric": query["Metric"]}, "DataPoints": self._points(stamps, total)}
            )
            for name, dimensions, load in groups:
                metric_list.append(
                    {
                        "Key": {"Metric": query["Metric"], "Dimensions": dimensions},
                        "DataPoints": self._points(stamps, load, quiet=name in resource.quiet_now),
                    }
                )
        return {
            "AlignedStartTime": dt.datetime.fromtimestamp(start, dt.UTC),
            "AlignedEndTime": dt.datetime.fromtimestamp(end, dt.UTC),
            "Identifier": params["Identifier"],
            "MetricList": metric_list,
        }

    @staticmethod
    def _points(stamps: list[dt.datetime], value: float, quiet: bool = False) -> list[Any]:
        points: list[dict[str, Any]] = [{"Timestamp": t, "Value": value / 2} for t in stamps]
        if points:
            points[-1] = (
                {"Timestamp": stamps[-1]} if quiet else {"Timestamp": stamps[-1], "Value": value}
            )
        return points

    def _refuse(self, handler: BaseHTTPRequestHandler, problem: str) -> None:
        with self._lock:
            self.refused.append(problem)
        self._reply(handler, 400, json_error("InvalidArgumentException", problem))

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-amz-json-1.1")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
