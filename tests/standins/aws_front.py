"""An AWS endpoint in front of moto for discovery's calls (RDS, ElastiCache, STS, Resource
Groups Tagging): it answers what moto cannot, injects faults, and counts calls. Everything
else is passed to moto unchanged.

- DocumentDB's Describe answers: DescribeDBClusters / DescribeDBInstances filtered to engine
  docdb (moto refuses ``Engine="docdb"``) come from ``docdb_clusters`` and
  ``docdb_instances`` (boto3-shaped dicts, see ``docdb_cluster``), paged with MaxRecords and
  Marker like RDS pages.
- DescribePendingMaintenanceActions (moto: not implemented) from ``pending`` (ARN ->
  actions), paged the same way.
- ``CertificateDetails`` (moto leaves it out of DescribeDBInstances) added to moto's answers
  for the instance ids in ``certificates``.
- ``DbiResourceId`` (moto 5.2.5 gives every instance the same one) replaced in moto's
  DescribeDBInstances answers for the instance ids in ``resource_ids``.
- DescribeReplicationGroups (moto's answer, which follows botocore's ReplicationGroup shape:
  NodeGroups -> NodeGroupMembers, CurrentRole and ReadEndpoint with cluster mode off only)
  with two corrections: every member's CacheNodeId is ``0001`` (a group's member cache
  cluster has one node, numbered 0001; moto 5.2.5 puts the NodeGroupId there), and the
  CurrentRole of the member cache clusters in ``roles`` (cluster id -> primary/replica)
  replaced: a failover, which moto cannot make.
- ``faults``: requests that match a ``Fault`` (action, region of the signature, role ARN of
  an AssumeRole) get its AWS error, encoded in the request's protocol (Query XML, or JSON
  1.1 for the tagging API) so botocore parses it as it would AWS's.
- ``calls``: requests received per action (retries included).
- ``delay_seconds``: every request waits that long before it is answered (a slow API).

Clients reach it through ``env()`` (AWS_ENDPOINT_URL_<SERVICE>); tables are per process, not
per account (tests that need several accounts use moto's RDS, which is account-aware).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from tests.standins.http import HttpStandin

RDS_NAMESPACE = "http://rds.amazonaws.com/doc/2014-10-31/"
# The element name of each list's items in RDS Query answers (botocore's locationName).
LIST_ITEMS = {
    "DBClusters": "DBCluster",
    "DBInstances": "DBInstance",
    "TagList": "Tag",
    "DBClusterMembers": "DBClusterMember",
    "PendingMaintenanceActions": "ResourcePendingMaintenanceActions",
    "PendingMaintenanceActionDetails": "PendingMaintenanceAction",
}
SERVICES = ("RDS", "STS", "ELASTICACHE", "RESOURCE_GROUPS_TAGGING_API")
_REGION = re.compile(r"Credential=[^/]+/[0-9]{8}/([a-z0-9-]+)/")


@dataclass(frozen=True)
class Fault:
    """An AWS error for the requests that match every field given."""

    code: str
    message: str = ""
    status: int = 400
    action: str | None = None
    region: str | None = None
    role_arn: str | None = None  # an AssumeRole of this role


@dataclass(frozen=True)
class _Request:
    action: str
    region: str
    params: dict[str, list[str]]
    json_protocol: bool


def docdb_cluster(
    identifier: str,
    *,
    account: str,
    region: str,
    members: Mapping[str, bool],
    host: str,
    port: int,
    tags: Mapping[str, str] | None = None,
    engine_version: str = "5.0.0",
    backup_retention: int = 1,
) -> dict[str, Any]:
    """A DocumentDB cluster as DescribeDBClusters answers it; ``members``: instance ->
    is the writer."""
    return {
        "DBClusterIdentifier": identifier,
        "DBClusterArn": f"arn:aws:rds:{region}:{account}:cluster:{identifier}",
        "Engine": "docdb",
        "EngineVersion": engine_version,
        "Status": "available",
        "Endpoint": host,
        "ReaderEndpoint": host,
        "Port": port,
        "BackupRetentionPeriod": backup_retention,
        "DBClusterMembers": [
            {"DBInstanceIdentifier": name, "IsClusterWriter": writer}
            for name, writer in members.items()
        ],
        "TagList": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    }


def docdb_instance(
    identifier: str,
    *,
    cluster: str,
    account: str,
    region: str,
    host: str,
    port: int,
    instance_class: str = "db.r6g.large",
    engine_version: str = "5.0.0",
    certificate_valid_till: dt.datetime | None = None,
    resource_id: str | None = None,
) -> dict[str, Any]:
    instance: dict[str, Any] = {
        "DBInstanceIdentifier": identifier,
        "DBInstanceArn": f"arn:aws:rds:{region}:{account}:db:{identifier}",
        "DBInstanceClass": instance_class,
        "Engine": "docdb",
        "EngineVersion": engine_version,
        "DBInstanceStatus": "available",
        "Endpoint": {"Address": host, "Port": port},
        "DBClusterIdentifier": cluster,
        "TagList": [],
    }
    if resource_id is not None:
        instance["DbiResourceId"] = resource_id
    if certificate_valid_till is not None:
        instance["CertificateDetails"] = {
            "CAIdentifier": "rds-ca-rsa2048-g1",
            "ValidTill": certificate_valid_till,
        }
    return instance


def _xml(name: str, value: Any) -> str:
    if isinstance(value, Mapping):
        inner = "".join(_xml(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_xml(LIST_ITEMS[name], item) for item in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        inner = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def _page(items: list[Any], params: Mapping[str, list[str]]) -> tuple[list[Any], str | None]:
    size = int(params.get("MaxRecords", ["100"])[0])
    start = int(params.get("Marker", ["0"])[0])
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class AwsFront(HttpStandin):
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.docdb_clusters: list[dict[str, Any]] = []
        self.docdb_instances: list[dict[str, Any]] = []
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.certificates: dict[str, dt.datetime] = {}
        self.resource_ids: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.delay_seconds = 0.0
        self._released = threading.Event()
        self._lock = threading.Lock()
        super().__init__()

    def env(self) -> dict[str, str]:
        return {f"AWS_ENDPOINT_URL_{service}": self.url for service in SERVICES}

    def add_docdb_cluster(
        self, cluster: str, writer: str, *, account: str, region: str, resource_id: str
    ) -> None:
        """A DocumentDB cluster of one instance, its writer, at the usual endpoint names."""
        self.docdb_clusters.append(
            docdb_cluster(
                cluster,
                account=account,
                region=region,
                members={writer: True},
                host=f"{cluster}.cluster-abc.docdb.amazonaws.com",
                port=27017,
            )
        )
        self.docdb_instances.append(
            docdb_instance(
                writer,
                cluster=cluster,
                account=account,
                region=region,
                host=f"{writer}.abc.docdb.amazonaws.com",
                port=27017,
                resource_id=resource_id,
            )
        )

    def stop(self) -> None:
        self._released.set()  # slow answers still pending end now
        super().stop()

    def reset(self) -> None:
        self.docdb_clusters, self.docdb_instances = [], []
        self.pending, self.certificates, self.faults = {}, {}, []
        self.resource_ids, self.roles = {}, {}
        self.delay_seconds = 0.0
        with self._lock:
            self.calls.clear()

    def calls_snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)

    # --- serving --------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = self._parse(handler, body)
        with self._lock:
            self.calls[request.action] += 1
        if self.delay_seconds:
            self._released.wait(self.delay_seconds)
        for fault in list(self.faults):
            if self._matches(fault, request):
                self._error(handler, request, fault)
                return
        own = self._own_answer(request)
        if own is not None:
            self._reply(handler, 200, own.encode(), {"Content-Type": "text/xml"})
            return
        status, data, headers = self._forward(handler, body)
        if status == 200 and request.action == "DescribeDBInstances" and self.certificates:
            data = self._with_certificates(data)
        if status == 200 and request.action == "DescribeDBInstances" and self.resource_ids:
            data = self._with_resource_ids(data)
        if status == 200 and request.action == "DescribeReplicationGroups":
            data = self._group_members(data)
        self._reply(handler, status, data, headers)

    @staticmethod
    def _parse(handler: BaseHTTPRequestHandler, body: bytes) -> _Request:
        match = _REGION.search(handler.headers.get("Authorization", ""))
        region = match.group(1) if match else ""
        target = handler.headers.get("X-Amz-Target")
        if target:  # JSON protocol: the action is in a header
            return _Request(target.rpartition(".")[2], region, {}, True)
        params = parse_qs(body.decode(), keep_blank_values=True)
        return _Request(params.get("Action", [""])[0], region, params, False)

    @staticmethod
    def _matches(fault: Fault, request: _Request) -> bool:
        return (
            (fault.action is None or fault.action == request.action)
            and (fault.region is None or fault.region == request.region)
            and (fault.role_arn is None or request.params.get("RoleArn") == [fault.role_arn])
        )

    @staticmethod
    def _engines(params: Mapping[str, list[str]]) -> list[str]:
        for key, value in params.items():
            if key.startswith("Filters.Filter.") and key.endswith(".Name") and value == ["engine"]:
                prefix = key.removesuffix(".Name") + ".Values.Value."
                return [v[0] for k, v in sorted(params.items()) if k.startswith(prefix)]
        return []

    def _own_answer(self, request: _Request) -> str | None:
        items: list[Any]
        if request.action == "DescribePendingMaintenanceActions":
            key = "PendingMaintenanceActions"
            items = [
                {"ResourceIdentifier": arn, "PendingMaintenanceActionDetails": actions}
                for arn, actions in self.pending.items()
            ]
        elif request.action in ("DescribeDBClusters", "DescribeDBInstances") and self._engines(
            request.params
        ) == ["docdb"]:
            clusters = request.action == "DescribeDBClusters"
            key = "DBClusters" if clusters else "DBInstances"
            items = list(self.docdb_clusters if clusters else self.docdb_instances)
        else:
            return None
        page, marker = _page(items, request.params)
        result = _xml(key, page) + (f"<Marker>{marker}</Marker>" if marker else "")
        action = request.action
        return (
            f'<{action}Response xmlns="{RDS_NAMESPACE}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>aws-front</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )

    def _with_certificates(self, data: bytes) -> bytes:
        ElementTree.register_namespace("", RDS_NAMESPACE)
        root = ElementTree.fromstring(data)
        for element in root.iter():
            if not element.tag.endswith("}DBInstance") and element.tag != "DBInstance":
                continue
            ns = element.tag[: element.tag.index("}") + 1] if element.tag.startswith("{") else ""
            identifier = element.findtext(f"{ns}DBInstanceIdentifier")
            valid_till = self.certificates.get(identifier or "")
            if valid_till is None:
                continue
            details = ElementTree.SubElement(element, f"{ns}CertificateDetails")
            ElementTree.SubElement(details, f"{ns}CAIdentifier").text = "rds-ca-rsa2048-g1"
            ElementTree.SubElement(details, f"{ns}ValidTill").text = valid_till.astimezone(
                dt.UTC
            ).strftime("%Y-%m-%dT%H:%M:%SZ")
        return bytes(ElementTree.tostring(root))

    def _with_resource_ids(self, data: bytes) -> bytes:
        ElementTree.register_namespace("", RDS_NAMESPACE)
        root = ElementTree.fromstring(data)
        for element in root.iter():
            if not element.tag.endswith("}DBInstance") and element.tag != "DBInstance":
                continue
            ns = element.tag[: element.tag.index("}") + 1] if element.tag.startswith("{") else ""
            resource_id = self.resource_ids.get(element.findtext(f"{ns}DBInstanceIdentifier") or "")
            if resource_id is None:
                continue
            found = element.find(f"{ns}DbiResourceId")
            if found is None:
                found = ElementTree.SubElement(element, f"{ns}DbiResourceId")
            found.text = resource_id
        return bytes(ElementTree.tostring(root))

    def _group_members(self, data: bytes) -> bytes:
        root = ElementTree.fromstring(data)
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        if ns:
            ElementTree.register_namespace("", ns[1:-1])
        for member in root.iter(f"{ns}NodeGroupMember"):
            node = member.find(f"{ns}CacheNodeId")
            if node is not None:
                node.text = "0001"
            role = self.roles.get(member.findtext(f"{ns}CacheClusterId") or "")
            current = member.find(f"{ns}CurrentRole")
            if role is not None and current is not None:
                current.text = role
        return bytes(ElementTree.tostring(root))

    def _error(self, handler: BaseHTTPRequestHandler, request: _Request, fault: Fault) -> None:
        if request.json_protocol:
            body = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.1"}
        else:
            body = (
                "<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{escape(fault.code)}</Code><Message>{escape(fault.message)}</Message>"
                "</Error><RequestId>aws-front</RequestId></ErrorResponse>"
            ).encode()
            headers = {"Content-Type": "text/xml"}
        self._reply(handler, fault.status, body, headers)

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        skip = {"host", "content-length", "connection", "transfer-encoding"}
        request = urllib.request.Request(
            self.upstream + handler.path,
            data=body if handler.command == "POST" else None,
            method=handler.command,
            headers={k: v for k, v in handler.headers.items() if k.lower() not in skip},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, data, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, data, headers = exc.code, exc.read(), exc.headers
        return status, data, {k: v for k, v in headers.items() if k.lower() not in skip}

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str]
    ) -> None:
        with contextlib.suppress(OSError):
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
