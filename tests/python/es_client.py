"""Ships records to shiplog with the official Elasticsearch 8 client and reads them back.

Usage: es_client.py URL MARKER. Exits non-zero, saying why, when anything disagrees.
"""

import sys
from datetime import datetime, timedelta, timezone

from elasticsearch import Elasticsearch, helpers


def main(url: str, marker: str) -> None:
    es = Elasticsearch(url, request_timeout=30)
    info = es.info()
    assert info["version"]["number"].startswith("8."), info
    assert es.ping()
    base = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
    actions = [
        {
            "_index": "py-es",
            "_id": f"{marker}-{i}",
            "_source": {
                "@timestamp": (base + timedelta(seconds=i)).isoformat(),
                "message": f"es client {marker} line {i}",
                "log.level": "warn" if i % 2 else "info",
                "service": {"name": "py-es"},
                "host": {"name": "py-host"},
                "marker": marker,
                "n": i,
            },
        }
        for i in range(5)
    ]
    ok, errors = helpers.bulk(es, actions)
    assert ok == 5 and not errors, (ok, errors)
    es.indices.refresh(index="py-es")
    res = es.search(
        index="py-es",
        query={
            "bool": {
                "must": [{"match": {"message": marker}}],
                "filter": [{"range": {"n": {"gte": 2}}}],
            }
        },
        sort=[{"@timestamp": "asc"}],
        size=10,
    )
    hits = res["hits"]["hits"]
    assert res["hits"]["total"]["value"] == 3, res
    assert [h["_id"] for h in hits] == [f"{marker}-{i}" for i in (2, 3, 4)], hits
    assert hits[1]["_source"]["log"]["level"] == "warn", hits[1]
    assert hits[0]["_source"]["service"]["name"] == "py-es", hits[0]
    res = es.search(index="py-es", q=f"fields.marker:{marker} AND level:warn")
    assert res["hits"]["total"]["value"] == 2, res
    print(f"es client: shipped 5, read back {len(hits)} (elasticsearch-py {sys.modules['elasticsearch'].__versionstr__})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
