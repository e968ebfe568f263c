//! The fast path for the envelopes most traffic is made of: requests and dependencies in
//! their usual shape, read into a row directly from borrowed JSON (no `serde_json::Value`, no
//! intermediate item), with the checks of `tracelink_core::envelope`.
//!
//! Anything else, or anything unusual about one of these (a number where text is usual, a
//! duplicate key, a field of the wrong type, a `sampleRate` that is not a number), is not
//! decided here: the caller reads it with the full reader, which accepts or refuses it with
//! its message. The rows of both paths are equal (tested on every capture).

use std::borrow::Cow;

use serde::Deserialize;
use tracelink_core::wire_time;

use crate::store::Row;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(rename = "iKey", borrow, default)]
    ikey: Option<Cow<'a, str>>,
    #[serde(rename = "sampleRate", default)]
    _sample_rate: Option<f64>,
    #[serde(borrow, default)]
    tags: Option<Tags<'a>>,
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize, Default)]
struct Tags<'a> {
    #[serde(rename = "ai.operation.id", borrow, default)]
    operation_id: Option<Cow<'a, str>>,
    #[serde(rename = "ai.operation.parentId", borrow, default)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(rename = "ai.operation.name", borrow, default)]
    operation_name: Option<Cow<'a, str>>,
    #[serde(rename = "ai.cloud.role", borrow, default)]
    cloud_role: Option<Cow<'a, str>>,
    #[serde(rename = "ai.cloud.roleInstance", borrow, default)]
    role_instance: Option<Cow<'a, str>>,
    #[serde(rename = "ai.user.id", borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(rename = "ai.session.id", borrow, default)]
    session_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "baseType", borrow)]
    base_type: Cow<'a, str>,
    #[serde(rename = "baseData", borrow)]
    base_data: BaseData<'a>,
}

#[derive(Deserialize)]
struct BaseData<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    duration: Option<Cow<'a, str>>,
    #[serde(rename = "responseCode", borrow, default)]
    response_code: Option<Cow<'a, str>>,
    #[serde(rename = "resultCode", borrow, default)]
    result_code: Option<Cow<'a, str>>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    target: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    dependency_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    properties: Option<Properties<'a>>,
}

/// The properties: `ai_legacyRootId`, and every value for search, in key order (as the full
/// reader keeps them). A value that is not a string, or a key given twice, is for the full
/// reader.
struct Properties<'a> {
    legacy_root: Option<Cow<'a, str>>,
    text: String,
}

#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Properties<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Properties<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut all: Vec<(Text<'a>, Text<'a>)> = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    all.push(entry);
                }
                all.sort_unstable_by(|a, b| a.0.0.cmp(&b.0.0));
                if all.windows(2).any(|w| w[0].0.0 == w[1].0.0) {
                    return Err(serde::de::Error::custom("a property given twice"));
                }
                let text = crate::store::property_text(all.iter().map(|(_, v)| v.0.as_ref()));
                let legacy_root = all
                    .into_iter()
                    .find(|(k, _)| k.0 == tracelink_core::LEGACY_ROOT_ID_PROPERTY)
                    .map(|(_, v)| v.0);
                Ok(Properties { legacy_root, text })
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

fn text(s: &Option<Cow<'_, str>>) -> Option<String> {
    s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The row of a request or dependency envelope and its `iKey` (the caller says where the
/// envelope is kept); `None` when the full reader must decide.
pub(crate) fn row(line: &str) -> Option<(Row, Option<String>)> {
    let e: Envelope<'_> = serde_json::from_str(line).ok()?;
    let request = e.data.base_type.eq_ignore_ascii_case("RequestData");
    if !request
        && !e
            .data
            .base_type
            .eq_ignore_ascii_case("RemoteDependencyData")
    {
        return None;
    }
    let _ = &e.name;
    let time = wire_time::parse_time(&e.time)?;
    let b = &e.data.base_data;
    let duration = wire_time::parse_duration(b.duration.as_deref()?)?;
    let tags = e.tags.unwrap_or_default();
    let mut row = Row {
        timestamp: wire_time::format_time(time),
        ts_ms: time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        operation_id: text(&tags.operation_id),
        parent_id: text(&tags.parent_id),
        operation_name: text(&tags.operation_name),
        cloud_role: text(&tags.cloud_role),
        role_instance: text(&tags.role_instance),
        user_id: text(&tags.user_id),
        session_id: text(&tags.session_id),
        legacy_root: b
            .properties
            .as_ref()
            .and_then(|p| p.legacy_root.as_deref())
            .map(str::to_owned),
        search_text: b
            .properties
            .as_ref()
            .map(|p| p.text.clone())
            .unwrap_or_default(),
        duration_ms: Some(duration.as_secs_f64() * 1000.0),
        name: text(&b.name),
        id: text(&b.id),
        ..Row::default()
    };
    if request {
        // Required: id, responseCode, success (SPEC 7.1).
        b.id.as_ref()?;
        row.item_type = "request".into();
        row.success = Some(b.success?);
        row.result_code = text(&Some(b.response_code.clone()?));
        row.source = text(&b.source);
        row.url = text(&b.url);
    } else {
        // Required: name.
        b.name.as_ref()?;
        row.item_type = "dependency".into();
        row.success = Some(b.success.unwrap_or(true));
        row.result_code = text(&b.result_code);
        row.target = text(&b.target);
        row.url = text(&b.data);
        row.source = text(&b.dependency_type);
    }
    Some((row, e.ikey.map(Cow::into_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURES: [&str; 4] = [
        include_str!("../../../../tests/data/captures/node-applicationinsights-2.9.8-w3c.ndjson"),
        include_str!(
            "../../../../tests/data/captures/node-applicationinsights-2.9.8-requestid-legacy.ndjson"
        ),
        include_str!(
            "../../../../tests/data/captures/python-azure-monitor-exporter-1.0.0b58.ndjson"
        ),
        include_str!(
            "../../../../tests/data/captures/browser-applicationinsights-web-3.4.4.ndjson"
        ),
    ];

    /// The full reader's row, as the slow path makes it.
    fn slow(line: &str) -> Option<(Row, Option<String>)> {
        let mut v: serde_json::Value = serde_json::from_str(line).ok()?;
        super::super::canonical_base_type(&mut v);
        let e = tracelink_core::envelope::from_value(v).ok()?;
        Some((Row::from_item(&e.telemetry, Default::default()), e.ikey))
    }

    #[test]
    fn rows_equal_the_full_readers_on_every_capture() {
        let mut fast = 0;
        for line in CAPTURES
            .iter()
            .flat_map(|c| c.lines())
            .filter(|l| !l.trim().is_empty())
        {
            if let Some(row) = row(line) {
                assert_eq!(Some(row), slow(line), "{line}");
                fast += 1;
            }
        }
        assert!(fast >= 8, "{fast}");
    }

    #[test]
    fn anything_unusual_goes_to_the_full_reader() {
        let request = CAPTURES[0].lines().nth(1).unwrap();
        assert!(row(request).is_some());
        for (from, to) in [
            (r#""responseCode":"200""#, r#""responseCode":200"#),
            (r#""success":true"#, r#""success":"true""#),
            (r#""sampleRate":100"#, r#""sampleRate":"100""#),
            (r#""ai.operation.id""#, r#""ai.operation.id":1,"x""#),
            (r#""duration":"00:00:00.009""#, r#""duration":"soon""#),
            (r#""baseType":"RequestData""#, r#""baseType":"EventData""#),
        ] {
            let changed = request.replace(from, to);
            assert_ne!(changed, request, "{from}");
            assert!(row(&changed).is_none(), "{to}");
        }
        // Missing required fields are for the full reader to name.
        let no_id = request.replace(r#""id":"|"#, r#""idx":"|"#);
        assert!(row(&no_id).is_none());
        // Case does not matter for the type.
        let lower = request.replace(r#""baseType":"RequestData""#, r#""baseType":"requestdata""#);
        assert_eq!(row(&lower).map(|r| r.0.item_type), Some("request".into()));
    }
}
