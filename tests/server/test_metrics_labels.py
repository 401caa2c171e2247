"""``/metrics`` labels stay bounded whatever senders write in ``X-MSS-NIL`` (review of issue
11 item 4): past :data:`server.ops.metrics.SOFTWARE_LABELS` distinct values, new ones count as
``other``; no message goes uncounted."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from server.ops.metrics import OTHER_SOFTWARE, SOFTWARE_LABELS, ServerMetrics
from storage.usage import UsageEvent


def test_software_label_values_are_bounded() -> None:
    metrics = ServerMetrics()
    sent = 3 * SOFTWARE_LABELS
    for n in range(sent):
        metrics.usage(UsageEvent("sent", "FINESS:010000024", f"Logiciel {n}/1.0", "PER"))
    metrics.usage(UsageEvent("sent", "FINESS:010000024", "Logiciel 0/1.0", "PER"))  # known
    family = next(f for f in text_string_to_metric_families(metrics.exposition().decode())
                  if f.name == "hygie_messages_sent")  # fmt: skip
    totals = {s.labels["software"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert len(totals) == SOFTWARE_LABELS + 1
    assert totals["Logiciel 0/1.0"] == 2
    assert totals[OTHER_SOFTWARE] == sent - SOFTWARE_LABELS
    assert sum(totals.values()) == sent + 1
