//! Field limits (SPEC 6.5) and the UTF-8-safe truncation that applies them.
//!
//! Limits count characters (Unicode scalar values, as JSON-schema `maxLength` does), and a
//! cut always falls on a char boundary, so truncation never panics and never splits a char.
//! Envelope serialization applies them to every field, whatever the item was built with.
//!
//! ```
//! use tracelink_core::model::limits::truncate;
//!
//! assert_eq!(truncate("héllo", 2), "hé");
//! assert_eq!(truncate("short", 1024), "short");
//! ```

/// Request and page view `name`, dependency `name`.
pub const NAME: usize = 1024;
/// Request and dependency `id` (the Breeze schema's limit).
pub const ID: usize = 512;
/// Request and page view `url`.
pub const URL: usize = 2048;
/// Request `responseCode`, dependency `resultCode`.
pub const RESPONSE_CODE: usize = 1024;
/// Request `source`.
pub const SOURCE: usize = 1024;
/// Dependency `data`.
pub const DATA: usize = 8192;
/// Dependency `target`.
pub const TARGET: usize = 1024;
/// Dependency `type`.
pub const TYPE: usize = 1024;
/// Event `name`.
pub const EVENT_NAME: usize = 512;
/// Property key.
pub const PROPERTY_KEY: usize = 150;
/// Property value.
pub const PROPERTY_VALUE: usize = 8192;
/// Trace `message`, exception `message` and `stack`.
pub const MESSAGE: usize = 32768;
/// Exception `typeName`, `problemId`, metric `name`.
pub const TYPE_NAME: usize = 1024;
/// Metric namespace.
pub const METRIC_NAMESPACE: usize = 256;

/// The limit of a context tag (SPEC 6.5; the other SDKs' limits for the rest), or `None` for
/// a tag tracelink does not know (those are cut at [`PROPERTY_VALUE`]).
pub fn tag(key: &str) -> Option<usize> {
    Some(match key {
        "ai.operation.id" | "ai.operation.parentId" | "ai.user.id" => 128,
        "ai.session.id" | "ai.device.locale" | "ai.device.type" => 64,
        "ai.operation.correlationVector" | "ai.internal.sdkVersion" => 64,
        "ai.internal.agentVersion" => 64,
        "ai.location.ip" => 45,
        "ai.session.isFirst" => 5,
        "ai.cloud.role" | "ai.cloud.roleInstance" | "ai.cloud.roleVer" => 256,
        "ai.cloud.location" | "ai.device.model" | "ai.device.oemName" => 256,
        "ai.device.osVersion" | "ai.internal.nodeName" => 256,
        "ai.location.country" | "ai.location.province" | "ai.location.city" => 256,
        "ai.operation.name" | "ai.operation.syntheticSource" => 1024,
        "ai.user.accountId" | "ai.user.authUserId" | "ai.application.ver" => 1024,
        "ai.device.id" => 1024,
        _ => return None,
    })
}

/// `s` cut to at most `max` chars, on a char boundary.
#[inline]
pub fn truncate(s: &str, max: usize) -> &str {
    // Fast path: `max` bytes are at most `max` chars.
    if s.len() <= max {
        return s;
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_6_5_cuts_on_char_boundaries() {
        let s = "日本語".repeat(500); // 1500 chars, 4500 bytes
        let t = truncate(&s, NAME);
        assert_eq!(t.chars().count(), 1024);
        assert_eq!(truncate("🦀🦀", 1), "🦀");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("abc", 0), "");
    }

    proptest! {
        #[test]
        fn truncation_never_splits_a_char(s in "\\PC{0,300}", max in 0usize..400) {
            let t = truncate(&s, max);
            prop_assert!(s.starts_with(t));
            prop_assert!(t.chars().count() <= max);
            prop_assert_eq!(t.chars().count(), s.chars().count().min(max));
        }
    }
}
