"""Ships records to shiplog with the OpenSearch Python client and reads them back.

Usage: opensearch_client.py URL MARKER. Exits non-zero, saying why, when anything disagrees.
"""

import sys
from datetime import datetime, timedelta, timezone

from opensearchpy import OpenSearch, helpers


def main(url: str, marker: str) -> None:
    client = OpenSearch(hosts=[url], timeout=30)
    assert client.info()["tagline"] == "You Know, for Search"
    base = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc)
    docs = [
        {
            "_index": "py-os",
            "_source": {
                "timestamp": int((base + timedelta(seconds=i)).timestamp() * 1000),
                "msg": f"opensearch client {marker} line {i}",
                "level": "error",
                "service": "py-os",
                "host": "py-host",
                "marker": marker,
            },
        }
        for i in range(3)
    ]
    ok, errors = helpers.bulk(client, docs, refresh=True)
    assert ok == 3 and not errors, (ok, errors)
    res = client.search(
        index="py-os",
        body={"query": {"term": {"marker": marker}}, "size": 2, "from": 1},
    )
    hits = res["hits"]["hits"]
    assert res["hits"]["total"]["value"] == 3, res
    assert [h["_source"]["message"] for h in hits] == [
        f"opensearch client {marker} line {i}" for i in (1, 0)
    ], hits
    print(f"opensearch client: shipped 3, read back {len(hits)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
