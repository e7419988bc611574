//! Structured outputs: the JSON schema a client asks the answer to satisfy. Checked here before
//! any process sees it (Claude Code drops an invalid schema silently and answers in plain text),
//! kept in a canonical text form (so equal schemas share a Claude pool), and used to validate
//! answers of CLIs that do not validate them themselves.

use serde_json::Value;

/// Checks a client's schema: a valid JSON Schema whose root describes an object (the CLIs carry
/// the answer as a tool input or a strict response format, which is always an object).
pub fn check(schema: &Value) -> Result<(), String> {
    let Value::Object(root) = schema else {
        return Err("the schema must be a JSON object".into());
    };
    match root.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        _ => return Err("the schema's root must be {\"type\": \"object\", ...}".into()),
    }
    jsonschema::meta::validate(schema)
        .map_err(|e| format!("the schema is not a valid JSON Schema: {e}"))
}

/// The schema as canonical JSON text (object keys sorted): equal schemas, equal text.
pub fn canonical(schema: &Value) -> String {
    // serde_json's map is a BTreeMap here (no `preserve_order`): keys serialize sorted.
    schema.to_string()
}

/// `text` parsed as JSON and validated against `schema`: the answer, or why it is not one.
pub fn validate(schema: &Value, text: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("unusable schema: {e}"))?;
    let first_error = validator.iter_errors(&value).next().map(|e| {
        format!(
            "the answer does not match the schema: {e} (at {})",
            e.instance_path()
        )
    });
    match first_error {
        None => Ok(value),
        Some(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> Value {
        json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"], "additionalProperties": false})
    }

    #[test]
    fn schemas_are_checked_before_use() {
        assert!(check(&person()).is_ok());
        assert!(check(&json!({"type": "object"})).is_ok());
        assert!(check(&json!({"type": "array", "items": {}}))
            .unwrap_err()
            .contains("root"));
        assert!(check(&json!({"type": "nonsense"})).is_err());
        assert!(
            check(&json!({"type": "object", "properties": {"a": {"type": "nonsense"}}}))
                .unwrap_err()
                .contains("not a valid JSON Schema")
        );
        assert!(check(&json!("object")).is_err());
    }

    #[test]
    fn answers_are_validated_and_keys_order_does_not_matter() {
        assert_eq!(
            validate(&person(), r#"{"name": "x", "age": 1}"#),
            Ok(json!({"name": "x", "age": 1}))
        );
        assert!(validate(&person(), r#"{"name": 1, "age": 1}"#)
            .unwrap_err()
            .contains("schema"));
        assert!(validate(&person(), "not json")
            .unwrap_err()
            .contains("not JSON"));
        let a = json!({"b": 1, "a": {"d": 2, "c": 3}});
        let b: Value = serde_json::from_str(r#"{"a": {"c": 3, "d": 2}, "b": 1}"#).expect("json");
        assert_eq!(canonical(&a), canonical(&b));
    }
}
