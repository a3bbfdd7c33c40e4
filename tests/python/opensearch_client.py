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
    res = client.search(
        index="py-os",
        body={
            "size": 0,
            "query": {"term": {"marker": marker}},
            "aggs": {
                "per_second": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1s"}},
                "levels": {"terms": {"field": "level"}},
            },
        },
    )
    base_ms = int(base.timestamp() * 1000)
    per_second = res["aggregations"]["per_second"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in per_second] == [
        (base_ms + i * 1000, 1) for i in range(3)
    ], per_second
    levels = res["aggregations"]["levels"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in levels] == [("error", 3)], levels
    print(f"opensearch client: shipped 3, read back {len(hits)} and {len(per_second)} histogram buckets")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
