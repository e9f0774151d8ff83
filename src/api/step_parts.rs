//! The `steps` field of an upload form, as the spec describes it and as clients send it.
//!
//! The spec declares `steps` an array of step objects. Hand-written clients (curl, the
//! README) send one part holding the whole JSON array; generated clients follow the OpenAPI
//! multipart encoding and send one part per step, each a JSON object. Both are accepted, and
//! parts are joined in the order they arrive.
//!
//! A step with a field its op does not take (`"heigth"`) is refused, not ignored: a typo
//! would otherwise be processed as if the field had not been sent, and the client would
//! learn of it only from the result.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use poem::web::Field;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromMultipartField, ParseResult, Type};
use serde_json::Value;

use super::steps::StepRequest;

/// `None` when the form has no `steps` part at all (the default pipeline applies).
#[derive(Debug, Clone, Default)]
pub struct StepParts(pub Option<Vec<StepRequest>>);

impl Type for StepParts {
    const IS_REQUIRED: bool = false;
    type RawValueType = Vec<StepRequest>;
    type RawElementValueType = StepRequest;

    fn name() -> Cow<'static, str> {
        <Vec<StepRequest> as Type>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        <Vec<StepRequest> as Type>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Vec<StepRequest> as Type>::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.0.iter().flatten())
    }
}

/// One part: a JSON array of steps, or a single step object.
async fn parse_part(field: Field) -> ParseResult<Vec<StepRequest>> {
    let bytes = field.bytes().await.map_err(ParseError::custom)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(ParseError::custom)?;
    match &value {
        Value::Array(steps) => steps.iter().try_for_each(check_fields),
        single => check_fields(single),
    }
    .map_err(ParseError::custom)?;
    let steps = match value {
        Value::Array(_) => {
            Vec::<StepRequest>::parse_from_json(Some(value)).map_err(ParseError::propagate)?
        }
        single => vec![StepRequest::parse_from_json(Some(single)).map_err(ParseError::propagate)?],
    };
    Ok(steps)
}

/// Refuses a step object with a field its `op` does not take. Anything else (no `op`, an
/// unknown one, not an object) is left to the schema's own parsing, which says so.
fn check_fields(step: &Value) -> Result<(), String> {
    let Some(object) = step.as_object() else {
        return Ok(());
    };
    let Some(op) = object.get(DISCRIMINATOR).and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(fields) = fields_by_op().get(op) else {
        return Ok(());
    };
    match object
        .keys()
        .find(|key| key.as_str() != DISCRIMINATOR && !fields.contains(&key.as_str()))
    {
        Some(unknown) if fields.is_empty() => Err(format!(
            "the step `{op}` takes no fields, but has `{unknown}`"
        )),
        Some(unknown) => Err(format!(
            "the step `{op}` has no field `{unknown}`; its fields are {}",
            fields.join(", ")
        )),
        None => Ok(()),
    }
}

/// The name of the field that says which op a step is.
const DISCRIMINATOR: &str = "op";

/// Each op's fields, read from the schemas the spec is generated from, so this list cannot
/// drift from the step types.
fn fields_by_op() -> &'static HashMap<String, Vec<&'static str>> {
    static FIELDS: OnceLock<HashMap<String, Vec<&'static str>>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut registry = Registry::new();
        <StepRequest as Type>::register(&mut registry);
        let Some(mapping) = registry
            .schemas
            .get(StepRequest::name().as_ref())
            .and_then(|union| union.discriminator.as_ref())
            .map(|discriminator| &discriminator.mapping)
        else {
            return HashMap::new();
        };
        mapping
            .iter()
            .map(|(op, reference)| {
                let mut fields = Vec::new();
                collect_fields(
                    &registry,
                    &MetaSchemaRef::Reference(schema_name(reference)),
                    &mut fields,
                );
                fields.retain(|name| *name != DISCRIMINATOR);
                (op.clone(), fields)
            })
            .collect()
    })
}

/// A schema's name from its reference (`#/components/schemas/ResizeStep`).
fn schema_name(reference: &str) -> String {
    reference.rsplit('/').next().unwrap_or(reference).to_owned()
}

/// The property names of a schema, through references and `allOf` (a union's variant is
/// `allOf` of its `op` and the step's own object).
fn collect_fields(registry: &Registry, schema: &MetaSchemaRef, fields: &mut Vec<&'static str>) {
    let schema = match schema {
        MetaSchemaRef::Inline(schema) => &**schema,
        MetaSchemaRef::Reference(name) => match registry.schemas.get(&schema_name(name)) {
            Some(schema) => schema,
            None => return,
        },
    };
    fields.extend(schema.properties.iter().map(|(name, _)| *name));
    for part in &schema.all_of {
        collect_fields(registry, part, fields);
    }
}

impl ParseFromMultipartField for StepParts {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        match field {
            Some(field) => Ok(Self(Some(
                parse_part(field).await.map_err(ParseError::propagate)?,
            ))),
            None => Ok(Self(None)),
        }
    }

    async fn parse_from_repeated_field(self, field: Field) -> ParseResult<Self> {
        let mut steps = self.0.unwrap_or_default();
        steps.extend(parse_part(field).await.map_err(ParseError::propagate)?);
        Ok(Self(Some(steps)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_fields_from_the_schema() {
        let fields = fields_by_op();
        assert_eq!(fields.len(), 10, "{fields:?}");
        assert!(fields["resize"].contains(&"height"));
        assert!(fields["rotate"].contains(&"angle"));
        assert!(fields["grayscale"].is_empty());
    }

    #[test]
    fn a_misspelled_field_is_refused_naming_it_and_the_right_ones() {
        let typo = serde_json::json!({"op": "resize", "width": 10, "heigth": 5});
        let error = check_fields(&typo).unwrap_err();
        assert!(
            error.contains("`heigth`") && error.contains("height"),
            "{error}"
        );
        let extra = serde_json::json!({"op": "grayscale", "amount": 1});
        assert!(check_fields(&extra).is_err());
        let fine = serde_json::json!({"op": "resize", "width": 10, "upscale": true});
        assert!(check_fields(&fine).is_ok());
    }
}
