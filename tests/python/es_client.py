"""Ships records to shiplog with the official Elasticsearch 8 client and reads them back,
as hits and as aggregation buckets.

Usage: es_client.py URL MARKER. Exits non-zero, saying why, when anything disagrees.
"""

import sys
from datetime import datetime, timedelta, timezone

from elasticsearch import BadRequestError, Elasticsearch, helpers


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
    buckets = check_aggregations(es, marker, base)
    print(
        f"es client: shipped 5, read back {len(hits)} and {buckets} histogram buckets "
        f"(elasticsearch-py {sys.modules['elasticsearch'].__versionstr__})"
    )


def check_aggregations(es: Elasticsearch, marker: str, base: datetime) -> int:
    """Checks histogram and terms buckets of the five records, read through
    search(aggs=...), and that an unknown aggregation type is refused; returns the number
    of histogram buckets."""
    res = es.search(
        index="py-es",
        query={"term": {"marker": marker}},
        size=0,
        aggs={
            "per_2s": {
                "date_histogram": {"field": "@timestamp", "fixed_interval": "2s"},
                "aggs": {"levels": {"terms": {"field": "log.level"}}},
            },
            "per_minute": {"date_histogram": {"field": "@timestamp", "calendar_interval": "minute"}},
            "levels": {"terms": {"field": "log.level", "size": 1}},
            "services": {"terms": {"field": "service.name"}},
        },
    )
    assert res["hits"]["total"]["value"] == 5, res
    assert res["hits"]["hits"] == [], res
    aggs = res["aggregations"]
    base_ms = int(base.timestamp() * 1000)
    per_2s = aggs["per_2s"]["buckets"]
    # Records 0..4, one a second: 0-1, 2-3 and 4; odd ones warn, even ones info.
    assert [(b["key"], b["doc_count"]) for b in per_2s] == [
        (base_ms, 2),
        (base_ms + 2000, 2),
        (base_ms + 4000, 1),
    ], per_2s
    assert per_2s[0]["key_as_string"] == "2026-11-22T03:00:00.000Z", per_2s[0]
    inner = [[(t["key"], t["doc_count"]) for t in b["levels"]["buckets"]] for b in per_2s]
    assert inner == [[("info", 1), ("warn", 1)], [("info", 1), ("warn", 1)], [("info", 1)]], inner
    assert [(b["key"], b["doc_count"]) for b in aggs["per_minute"]["buckets"]] == [(base_ms, 5)], aggs
    levels = aggs["levels"]
    assert [(b["key"], b["doc_count"]) for b in levels["buckets"]] == [("info", 3)], levels
    assert levels["sum_other_doc_count"] == 2, levels
    assert levels["doc_count_error_upper_bound"] == 0, levels
    assert [(b["key"], b["doc_count"]) for b in aggs["services"]["buckets"]] == [("py-es", 5)], aggs
    try:
        es.search(index="py-es", size=0, aggs={"p": {"geo_bounds": {"field": "location"}}})
    except BadRequestError as e:
        assert e.meta.status == 400, e
        assert e.body["error"]["type"] == "parsing_exception", e.body
        assert "[geo_bounds]" in e.body["error"]["reason"], e.body
    else:
        raise AssertionError("an unknown aggregation type was accepted")
    return len(per_2s)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
