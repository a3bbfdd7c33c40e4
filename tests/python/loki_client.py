"""Ships Python `logging` records to shiplog with python-logging-loki (Loki push API v1,
JSON).

Usage: loki_client.py URL MARKER. Exits non-zero when a push is refused.
"""

import logging
import sys

import logging_loki


class StrictLokiHandler(logging_loki.LokiHandler):
    """Raises instead of printing when a push fails, so this script fails too."""

    def handleError(self, record):  # noqa: N802 (logging's name)
        raise


def main(url: str, marker: str) -> None:
    handler = StrictLokiHandler(
        url=f"{url}/loki/api/v1/push",
        tags={"service_name": "py-loki", "host": "py-host", "marker": marker},
        version="1",
    )
    logger = logging.getLogger("shiplog.compat.loki")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    for i in range(3):
        logger.warning("loki client %s line %d", marker, i)
    print("loki client: pushed 3 lines")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
