"""Anomaly family (host anomaly detector): rolling windows over a host's metrics.

Source ``host_metric_windows.parquet``: one row per host per minute, with ``host_id`` (string),
``event_timestamp`` (end of the windows, UTC) and, for each metric ``cpu`` (utilisation, 0 to 1),
``latency_ms`` and ``error_rate`` (0 to 1) and each window ``5m``, ``15m``, ``60m``, the columns
``<metric>_mean_<window>`` and ``<metric>_std_<window>`` (float64), e.g. ``cpu_mean_5m``.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, String
from feature_sources import source_path

METRICS = ("cpu", "latency_ms", "error_rate")
WINDOWS = ("5m", "15m", "60m")

host = Entity(name="host", join_keys=["host_id"], value_type=ValueType.STRING, description="A monitored host.")

host_metric_windows = FeatureView(
    name="host_metric_windows",
    entities=[host],
    # Windows are written every minute; a host silent for 10 minutes has no current windows.
    ttl=timedelta(minutes=10),
    schema=[Field(name="host_id", dtype=String)]
    + [
        Field(name=f"{metric}_{stat}_{window}", dtype=Float64)
        for metric in METRICS
        for window in WINDOWS
        for stat in ("mean", "std")
    ],
    source=FileSource(
        name="host_metric_windows_source",
        path=source_path("host_metric_windows"),
        timestamp_field="event_timestamp",
    ),
    online=True,
    description="5/15/60-minute mean and standard deviation of cpu, latency and error rate per host.",
)

anomaly_detector_features = FeatureService(
    name="anomaly_detector_features",
    features=[host_metric_windows],
    description="Metric windows the anomaly detector scores.",
)
