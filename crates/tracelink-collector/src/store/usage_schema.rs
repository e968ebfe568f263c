//! The indexes and the table the usage tools (`crate::usage`) and the metrics page read:
//! partial indexes, so that items the tools never read cost nothing more to write.

/// The index and table of the usage tools: created on open.
pub(crate) const SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS items_usage
    ON items(ts_ms, item_type, user_id, session_id, name, cloud_role)
    WHERE user_id IS NOT NULL AND item_type IN ('pageView', 'customEvent', 'request');
CREATE INDEX IF NOT EXISTS items_metrics ON items(name, ts_ms) WHERE item_type = 'customMetric';
CREATE TABLE IF NOT EXISTS usage_cohorts (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    event      TEXT,
    days       INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
";
