//! A validator for the subset of JSON Schema that the Breeze Swagger document uses: `$ref`,
//! `allOf`, `type`, `required`, `properties`, `additionalProperties`, `items`, `maxLength`,
//! `enum`. An envelope is checked against `TelemetryEnvelope`, and its `data.baseData` also
//! against the definition its `data.baseType` names (the schema's `Base.baseData` is the
//! abstract `Domain`).

use serde_json::Value;

/// A loaded schema.
#[derive(Debug)]
pub struct Schema {
    definitions: serde_json::Map<String, Value>,
}

impl Default for Schema {
    fn default() -> Self {
        Self::breeze()
    }
}

impl Schema {
    /// The Breeze schema from `tests/data`.
    pub fn breeze() -> Self {
        let doc: Value = serde_json::from_str(crate::data::BREEZE_SWAGGER).expect("schema is JSON");
        let definitions = doc["definitions"].as_object().expect("definitions").clone();
        Self { definitions }
    }

    /// Every violation of the schema in one envelope; empty when valid.
    pub fn validate_envelope(&self, envelope: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(envelope, &self.def("TelemetryEnvelope"), "$", &mut errors);
        let base_type = envelope["data"]["baseType"].as_str().unwrap_or_default();
        let def = match base_type {
            "MetricData" => "MetricsData",
            other => other,
        };
        match self.definitions.get(def) {
            Some(schema) => self.check(
                &envelope["data"]["baseData"],
                schema,
                "$.data.baseData",
                &mut errors,
            ),
            None => errors.push(format!("$.data.baseType: unknown type {base_type:?}")),
        }
        errors
    }

    fn def(&self, name: &str) -> Value {
        self.definitions.get(name).cloned().unwrap_or(Value::Null)
    }

    fn check(&self, v: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/definitions/");
            return self.check(v, &self.def(name), path, errors);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(v, s, path, errors);
            }
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "string" => v.is_string(),
                "number" => v.is_number(),
                "integer" => v.is_i64() || v.is_u64(),
                "boolean" => v.is_boolean(),
                "array" => v.is_array(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{path}: expected {t}, got {v}"));
                return;
            }
        }
        if let (Some(max), Some(s)) = (schema.get("maxLength").and_then(Value::as_u64), v.as_str())
            && s.chars().count() as u64 > max
        {
            errors.push(format!("{path}: longer than {max}"));
        }
        if let (Some(allowed), Some(s)) = (schema.get("enum").and_then(Value::as_array), v.as_str())
            && !allowed.iter().any(|a| a.as_str() == Some(s))
        {
            errors.push(format!("{path}: {s:?} not in enum"));
        }
        if let Some(obj) = v.as_object() {
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let req = req.as_str().unwrap_or_default();
                if !obj.contains_key(req) {
                    errors.push(format!("{path}: missing required {req}"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, child) in obj {
                let child_path = format!("{path}.{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check(child, s, &child_path, errors),
                    None => {
                        if let Some(extra) =
                            schema.get("additionalProperties").filter(|a| a.is_object())
                        {
                            self.check(child, extra, &child_path, errors);
                        }
                    }
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.check(item, items, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_what_it_should() {
        let s = Schema::breeze();
        let bad: Value = serde_json::from_str(
            r#"{"time":"x","tags":{"a":1},"data":{"baseType":"RequestData","baseData":{"ver":2,"id":"i","duration":"00:00:00","success":"yes","name":"n"}}}"#,
        )
        .unwrap();
        let errors = s.validate_envelope(&bad);
        let joined = errors.join("\n");
        assert!(joined.contains("missing required name"), "{joined}");
        assert!(joined.contains("$.tags.a: expected string"), "{joined}");
        assert!(joined.contains("missing required responseCode"), "{joined}");
        assert!(
            joined.contains("$.data.baseData.success: expected boolean"),
            "{joined}"
        );
    }
}
