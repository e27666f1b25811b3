#!/usr/bin/env python3
"""The test side of scripts/resilience-test.sh, Python standard library only.

  fault_tool.py metadata N                 N gpu.metadata.v1 events as "key TAB value" lines
                                           (input of KafkaRecords produce)
  fault_tool.py poison N OUT_VALUES        N malformed events for a gpu.metrics.v1 topic as
                                           "key TAB value" lines; their values, one per line, also
                                           go to OUT_VALUES (so the check can tell them apart)
  fault_tool.py ingest URL N ACKED RATE    POSTs N gpu.metrics.v1 CloudEvents to URL/v1/events in
                                           batches of 50 at about RATE events/s, retrying what got
                                           503 (after its Retry-After) until every event is
                                           acknowledged; writes the ids that got 202 to ACKED;
                                           prints one summary line
  fault_tool.py s3-ids ENDPOINT BUCKET PREFIX   every event id in the gzip NDJSON objects under
                                           PREFIX, one per line, duplicates kept (credentials and
                                           region from TELEMETRYD_TEST_S3_ACCESS_KEY, _SECRET_KEY,
                                           _REGION); the object count goes to stderr
  fault_tool.py s3-delete ENDPOINT BUCKET PREFIX   deletes the objects under PREFIX
  fault_tool.py reconcile DUMP --data T... [--dlq T...] --stored FILE... [--poison FILE]
                                           [--acked FILE]
                                           compares what Kafka holds (a KafkaRecords dump) with
                                           what was stored; prints `key=value` pairs (below)

reconcile: produced = distinct ids of the valid events in the data topics (poison values, matched
by their bytes, are not events); each --stored FILE lists every stored id (one per line,
duplicates kept) of one store, and an id counts as stored only when every store holds it;
stored_twice = ids a store holds more than once; extra = stored ids Kafka never held;
dead_lettered = records in the dlq topics, dlq_unexplained = those without a reason header or
whose bytes are not one of the poison values sent (or more copies than were sent), dlq_reasons =
their count per reason header; poison = poison records in the data topics; acked_missing =
acknowledged ids (--acked) not stored.
"""
import base64
import datetime
import gzip
import hashlib
import hmac
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter

_last_ms = 0
_seq = 0


def uuid7():
    """A lowercase UUIDv7 (monotonic within this process)."""
    global _last_ms, _seq
    ms = int(time.time() * 1000)
    if ms <= _last_ms:
        _seq += 1
        ms = _last_ms
    else:
        _seq = random.getrandbits(8)
    _last_ms = ms
    rand_a = (_seq & 0xFFF)
    rand_b = random.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def gpu_uuid(n):
    return f"GPU-fault0000-0000-0000-0000-{n:012d}"


def metrics_event(n):
    uuid = gpu_uuid(n % 16)
    return {
        "specversion": "1.0", "id": uuid7(), "source": "//telemetryd/fault-suite/ingest",
        "type": "io.telemetryd.gpu.metrics.v1", "time": now_rfc3339(), "subject": uuid,
        "data": {"gpu_uuid": uuid, "host": "fault-node", "model_name": "NVIDIA H100 80GB HBM3",
                 "collector": "synthetic", "utilization_gpu_percent": n % 101},
    }


def metadata_event(n):
    uuid = gpu_uuid(n % 64)
    t = now_rfc3339()
    return {
        "specversion": "1.0", "id": uuid7(), "source": "//telemetryd/fault-suite/metadata",
        "type": "io.telemetryd.gpu.metadata.v1", "time": t, "subject": uuid,
        "data": {"gpu_uuid": uuid, "host": f"fault-node-{n % 8}",
                 "model_name": "NVIDIA H100 80GB HBM3", "observed_at": t, "seq": n},
    }


def compact(doc):
    return json.dumps(doc, separators=(",", ":"))


def cmd_metadata(n):
    for i in range(n):
        event = metadata_event(i)
        print(f"{event['subject']}\t{compact(event)}")


def poison_values(n):
    """Malformed in ways that are permanent whoever decodes them: never storable."""
    out = []
    for i in range(n):
        good = metrics_event(i)
        kind = i % 6
        if kind == 0:
            value = '{"specversion":"1.0","id":"' + good["id"] + '", poison ' + str(i)
        elif kind == 1:
            value = f"poison {i}: not JSON at all"
        elif kind == 2:
            bad = dict(good, specversion="0.3", source=f"//poison/{i}")
            value = compact(bad)
        elif kind == 3:
            bad = dict(good, source=f"//poison/{i}")
            del bad["id"]
            value = compact(bad)
        elif kind == 4:
            bad = dict(good, type="io.telemetryd.poison.v1", source=f"//poison/{i}")
            value = compact(bad)
        else:
            bad = dict(good, source=f"//poison/{i}")
            bad["data"] = dict(good["data"], utilization_gpu_percent="high")
            value = compact(bad)
        out.append((good["subject"], value))
    return out


def cmd_poison(n, values_path):
    pairs = poison_values(n)
    with open(values_path, "w") as f:
        for _, value in pairs:
            f.write(value + "\n")
    for key, value in pairs:
        print(f"{key}\t{value}")


def cmd_ingest(url, n, acked_path, rate, batch=50, limit_s=240):
    """Posts N new events at about RATE per second, in batches; what got 503 (or a connection
    error) is posted again first, after the answer's Retry-After, until every event got 202.
    Anything else is a failure, and so is a 503 without Retry-After. Prints one summary line."""
    fresh = [metrics_event(i) for i in range(n)]
    retry_queue, acked, refused = [], [], []
    statuses = Counter()
    no_retry_after = errors = offered = 0
    first_503 = last_503 = None
    start = time.monotonic()
    deadline = start + limit_s
    while (fresh or retry_queue) and time.monotonic() < deadline:
        if retry_queue:
            chunk, retry_queue = retry_queue[:batch], retry_queue[batch:]
        else:
            due = start + offered / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            chunk, fresh = fresh[:batch], fresh[batch:]
            offered += len(chunk)
        req = urllib.request.Request(url.rstrip("/") + "/v1/events", data=json.dumps(chunk).encode(),
                                     method="POST",
                                     headers={"Content-Type": "application/cloudevents-batch+json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, answer, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, answer, headers = e.code, e.read(), e.headers
        except OSError:
            errors += 1
            retry_queue = chunk + retry_queue
            time.sleep(0.5)
            continue
        statuses[status] += 1
        try:
            items = json.loads(answer).get("items", [])
        except (ValueError, AttributeError):
            items = []
        by_index = {item.get("index"): item.get("status") for item in items}
        retry = []
        for i, event in enumerate(chunk):
            item_status = by_index.get(i, status)
            if item_status == 202:
                acked.append(event["id"])
            elif item_status in (429, 503):
                retry.append(event)
            else:
                refused.append(f"{event['id']}: {item_status} {answer[:300]!r}")
        if retry:
            wait = 1.0
            value = headers.get("Retry-After")
            if value is None or not value.strip().isdigit():
                no_retry_after += 1
            else:
                wait = min(float(value), 5.0)
            if status == 503:
                first_503 = first_503 or time.monotonic()
                last_503 = time.monotonic()
            retry_queue = retry + retry_queue
            time.sleep(wait)
    with open(acked_path, "w") as f:
        f.write("".join(i + "\n" for i in acked))
    codes = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
    window = f"{last_503 - first_503:.1f}" if first_503 else "-"
    print(f"acked={len(acked)} unacked={len(fresh) + len(retry_queue)} refused={len(refused)} "
          f"statuses={codes} connection_errors={errors} no_retry_after={no_retry_after} "
          f"503_window_s={window}")
    for line in refused[:5]:
        print("refused: " + line, file=sys.stderr)
    return 0 if not fresh and not retry_queue and not refused and no_retry_after == 0 else 1


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def s3_request(endpoint, path, query, method="GET"):
    """A SigV4-signed request without a body (path style) with the test credentials; returns the
    response body."""
    access = os.environ["TELEMETRYD_TEST_S3_ACCESS_KEY"]
    secret = os.environ["TELEMETRYD_TEST_S3_SECRET_KEY"]
    region = os.environ.get("TELEMETRYD_TEST_S3_REGION", "us-east-1")
    parsed = urllib.parse.urlsplit(endpoint)
    host = parsed.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    canonical_path = urllib.parse.quote(path, safe="/-_.~")
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items()))
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, canonical_path, canonical_query,
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}")
    url = f"{parsed.scheme}://{host}{canonical_path}" + (f"?{canonical_query}" if query else "")
    req = urllib.request.Request(url, method=method,
                                 headers={"x-amz-content-sha256": payload, "x-amz-date": amz_date,
                                          "Authorization": auth})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def s3_keys(endpoint, bucket, prefix):
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    keys, token = [], None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        root = ET.fromstring(s3_request(endpoint, f"/{bucket}", query))
        keys += [c.findtext(f"{ns}Key") for c in root.iter(f"{ns}Contents")]
        token = root.findtext(f"{ns}NextContinuationToken")
        if root.findtext(f"{ns}IsTruncated") != "true" or not token:
            return keys


def cmd_s3_delete(endpoint, bucket, prefix):
    for key in s3_keys(endpoint, bucket, prefix):
        s3_request(endpoint, f"/{bucket}/{key}", {}, method="DELETE")
    return 0


def cmd_s3_ids(endpoint, bucket, prefix):
    keys = s3_keys(endpoint, bucket, prefix)
    out = []
    for key in keys:
        body = gzip.decompress(s3_request(endpoint, f"/{bucket}/{key}", {}))
        for line in body.splitlines():
            if line.strip():
                out.append(json.loads(line)["id"])
    sys.stdout.write("".join(i + "\n" for i in out))
    print(f"s3: {len(keys)} objects, {len(out)} records under {prefix}", file=sys.stderr)
    return 0


def read_dump(path):
    for line in open(path, encoding="utf-8"):
        topic, partition, offset, reason, value = line.rstrip("\n").split("\t")
        yield topic, reason, base64.b64decode(value).decode("utf-8", "replace")


def cmd_reconcile(args):
    opts = {"--data": [], "--dlq": [], "--stored": [], "--poison": [], "--acked": []}
    current = None
    for arg in args[1:]:
        if arg in opts:
            current = opts[arg]
        elif current is None:
            raise SystemExit(f"reconcile: unexpected {arg}")
        else:
            current.append(arg)
    poison = Counter()
    for path in opts["--poison"]:
        poison.update(line.rstrip("\n") for line in open(path, encoding="utf-8"))
    data, dlq = set(opts["--data"]), set(opts["--dlq"])
    produced, messages, poison_seen = set(), 0, 0
    dlq_values, reasons, dead_lettered, unexplained = Counter(), Counter(), 0, 0
    for topic, reason, value in read_dump(args[0]):
        if topic in data:
            messages += 1
            if value in poison:
                poison_seen += 1
                continue
            produced.add(json.loads(value)["id"])
        elif topic in dlq:
            dead_lettered += 1
            dlq_values[value] += 1
            reasons[reason] += 1
            if reason == "-" or value not in poison:
                unexplained += 1
    # A poison value dead-lettered more often than it was sent is a duplicate dead letter.
    unexplained += sum(max(0, c - poison[v]) for v, c in dlq_values.items() if v in poison)
    stores = []
    twice = 0
    for path in opts["--stored"]:
        counts = Counter(line.strip() for line in open(path) if line.strip())
        twice += sum(1 for c in counts.values() if c > 1)
        stores.append(set(counts))
    stored = set.intersection(*stores) if stores else set()
    anywhere = set.union(*stores) if stores else set()
    acked = set()
    for path in opts["--acked"]:
        acked.update(line.strip() for line in open(path) if line.strip())
    result = {
        "messages": messages, "produced": len(produced), "stored": len(stored & produced),
        "lost": len(produced - stored), "stored_twice": twice, "extra": len(anywhere - produced),
        "dead_lettered": dead_lettered, "dlq_unexplained": unexplained, "poison": poison_seen,
        "poison_sent": sum(poison.values()), "acked": len(acked),
        "acked_missing": len(acked - stored),
        "dlq_reasons": ",".join(f"{k}:{v}" for k, v in sorted(reasons.items())) or "-",
    }
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    verb, args = argv[0], argv[1:]
    if verb == "metadata" and len(args) == 1:
        cmd_metadata(int(args[0]))
        return 0
    if verb == "poison" and len(args) == 2:
        cmd_poison(int(args[0]), args[1])
        return 0
    if verb == "ingest" and len(args) == 4:
        return cmd_ingest(args[0], int(args[1]), args[2], float(args[3]))
    if verb == "s3-ids" and len(args) == 3:
        return cmd_s3_ids(*args)
    if verb == "s3-delete" and len(args) == 3:
        return cmd_s3_delete(*args)
    if verb == "reconcile" and args:
        return cmd_reconcile(args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
