"""Ships Python `logging` records to shiplog through the OpenTelemetry SDK's OTLP/HTTP
(protobuf, gzip) exporter.

Usage: otlp_client.py URL MARKER. Exits non-zero when an export does not succeed.
"""

import logging
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

results = []


class CheckedExporter(OTLPLogExporter):
    """Remembers every export's result, so a refused request fails this script."""

    def export(self, batch):
        result = super().export(batch)
        results.append(result)
        return result


def main(url: str, marker: str) -> None:
    provider = LoggerProvider(
        resource=Resource.create(
            {"service.name": "py-otlp", "host.name": "py-host", "k8s.pod.name": f"pod-{marker}"}
        )
    )
    exporter = CheckedExporter(endpoint=f"{url}/v1/logs", compression=Compression.Gzip, timeout=30)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("shiplog.compat.otlp")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    logger.error("otlp client %s line 0", marker, extra={"marker": marker, "attempt": 1})
    logger.info("otlp client %s line 1", marker, extra={"marker": marker, "attempt": 2})
    # A model server logging its answers: attributes that make the record a prediction.
    logger.info(
        "scored",
        extra={
            "marker": marker,
            "model": "churn",
            "model_version": "v7",
            "request_id": f"otlp-{marker}",
            "latency_ms": 12.5,
            "status": "ok",
        },
    )
    provider.force_flush()
    provider.shutdown()
    assert len(results) == 3, results
    assert all(r.name == "SUCCESS" for r in results), results
    print(f"otlp client: exported {len(results)} records")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
