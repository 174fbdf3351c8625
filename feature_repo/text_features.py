"""Text family (ticket classifier): the history of the customer who wrote the ticket.

Source ``customer_ticket_history.parquet``: one row per customer per snapshot (daily), with
``customer_id`` (string), ``event_timestamp`` (the snapshot time, UTC), ``tickets_7d`` and
``tickets_30d`` (int64: tickets the customer opened in the 7 / 30 days before the snapshot) and
``last_category`` (string: category of the customer's latest ticket before the snapshot).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Int64, String
from feature_sources import source_path

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A customer who opens support tickets.",
)

customer_ticket_history = FeatureView(
    name="customer_ticket_history",
    entities=[customer],
    # Daily snapshots: one missed run is tolerated, older counts are stale and come back null.
    ttl=timedelta(days=2),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="tickets_7d", dtype=Int64, description="Tickets opened in the 7 days before the snapshot."),
        Field(name="tickets_30d", dtype=Int64, description="Tickets opened in the 30 days before the snapshot."),
        Field(name="last_category", dtype=String, description="Category of the latest earlier ticket."),
    ],
    source=FileSource(
        name="customer_ticket_history_source",
        path=source_path("customer_ticket_history"),
        timestamp_field="event_timestamp",
    ),
    online=True,
    description="Ticket counts and last category per customer.",
)

text_classifier_features = FeatureService(
    name="text_classifier_features",
    features=[customer_ticket_history],
    description="Features the ticket classifier reads beside the ticket text.",
)
