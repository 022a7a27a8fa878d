"""A small real OTLP/HTTP trace receiver: `POST /v1/traces` with protobuf or JSON bodies, as the OTLP
specification describes (OTLP docs: "OTLP/HTTP", "OTLP/HTTP Request" and "OTLP/HTTP Response").

Tests point every component's OTEL_EXPORTER_OTLP_ENDPOINT at it and read the received spans back, flattened
to dicts (`GET /spans`, or the JSON Lines file given with `--out`). `sovereign up` runs a real trace viewer
instead where one is installed; this receiver is what the suite checks the wire format against.

`python -m sovereign_devstack.otlp_receiver --port N [--out FILE]`
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict, Parse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _value(any_value: dict[str, Any]) -> Any:
    """An OTLP AnyValue (as MessageToDict gives it) as a plain Python value."""
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in any_value:
            return any_value[kind]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "arrayValue" in any_value:
        return [_value(item) for item in any_value["arrayValue"].get("values", [])]
    if "kvlistValue" in any_value:
        return {kv["key"]: _value(kv.get("value", {})) for kv in any_value["kvlistValue"].get("values", [])}
    if "bytesValue" in any_value:
        return any_value["bytesValue"]
    return None


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items or []}


def _hex(b64_or_hex: str) -> str:
    """Trace and span ids: MessageToDict gives base64 of the bytes; OTLP/JSON bodies carry hex."""
    try:
        return base64.b64decode(b64_or_hex, validate=True).hex()
    except (binascii.Error, ValueError):
        return b64_or_hex.lower()


def flatten(request: ExportTraceServiceRequest) -> Iterator[dict[str, Any]]:
    """One dict per span: ids in hex, its resource's and its own attributes, events and status."""
    body = MessageToDict(request, preserving_proto_field_name=False)
    for resource_spans in body.get("resourceSpans", []):
        resource = _attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                yield {
                    "trace_id": _hex(span.get("traceId", "")),
                    "span_id": _hex(span.get("spanId", "")),
                    "parent_span_id": _hex(span["parentSpanId"]) if span.get("parentSpanId") else None,
                    "links": [
                        {"trace_id": _hex(link.get("traceId", "")), "span_id": _hex(link.get("spanId", ""))}
                        for link in span.get("links", [])
                    ],
                    "name": span.get("name", ""),
                    "kind": span.get("kind", "SPAN_KIND_UNSPECIFIED"),
                    "service": resource.get("service.name"),
                    "resource": resource,
                    "attributes": _attributes(span.get("attributes")),
                    "events": [
                        {"name": event.get("name", ""), "attributes": _attributes(event.get("attributes"))}
                        for event in span.get("events", [])
                    ],
                    "status": span.get("status", {}).get("code", "STATUS_CODE_UNSET"),
                    "start_ns": int(span.get("startTimeUnixNano", 0)),
                    "end_ns": int(span.get("endTimeUnixNano", 0)),
                }


class OtlpReceiver:
    """The receiver on 127.0.0.1:`port` (0: a free one), in a background thread; spans kept in memory and,
    with `out`, appended to a JSON Lines file."""

    def __init__(self, port: int = 0, out: Path | None = None) -> None:
        self._spans: list[dict[str, Any]] = []
        self._raw: list[bytes] = []
        self._lock = threading.Lock()
        self._out = out
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                if self.path.rstrip("/") != "/v1/traces":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                request = ExportTraceServiceRequest()
                try:
                    if content_type == PROTOBUF:
                        request.ParseFromString(payload)
                    elif content_type == JSON:
                        Parse(payload.decode(), request)
                    else:
                        self.send_error(415, f"unsupported content type {content_type!r}")
                        return
                except Exception:  # noqa: BLE001 — OTLP: a body that cannot be decoded is a 400
                    self.send_error(400, "the body is not an ExportTraceServiceRequest")
                    return
                receiver._store(payload, list(flatten(request)))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", PROTOBUF)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") not in ("/spans", "/healthz"):
                    self.send_error(404)
                    return
                body = json.dumps(receiver.spans() if self.path.startswith("/spans") else {"ok": True})
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", JSON)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:  # one line per export would drown the test output
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _store(self, payload: bytes, spans: list[dict[str, Any]]) -> None:
        with self._lock:
            self._raw.append(payload)
            self._spans.extend(spans)
            if self._out is not None:
                with self._out.open("a", encoding="utf-8") as out:
                    out.writelines(json.dumps(span) + "\n" for span in spans)

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._spans)

    def raw_bodies(self) -> list[bytes]:
        """The request bodies exactly as received, for scans that must not depend on decoding."""
        with self._lock:
            return list(self._raw)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._raw.clear()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    receiver = OtlpReceiver(args.port, args.out)
    receiver._server.serve_forever()


if __name__ == "__main__":
    main()
