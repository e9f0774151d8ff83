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
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
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

/// Refuses, in the step language rather than the parser's, what a person most often gets
/// wrong in a step: not an object, no `op` or an unknown one, a field the op does not take,
/// a field it needs left out. Values of the wrong type or out of range are left to the
/// schema's own parsing, which names the field and the bound.
fn check_fields(step: &Value) -> Result<(), String> {
    let example = r#"{"op":"resize","width":800}"#;
    let Some(object) = step.as_object() else {
        return Err(format!(
            "each step is a JSON object with an `op`, like {example}; got {step}"
        ));
    };
    let ops = || {
        let mut names: Vec<&str> = fields_by_op().keys().map(String::as_str).collect();
        names.sort_unstable();
        names.join(", ")
    };
    let Some(op) = object.get(DISCRIMINATOR) else {
        return Err(format!(
            "a step has no `op`; the ops are {}, like {example}",
            ops()
        ));
    };
    let Some((op, fields)) = op
        .as_str()
        .and_then(|name| fields_by_op().get_key_value(name))
    else {
        return Err(format!("{op} is not an op; the ops are {}", ops()));
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| key.as_str() != DISCRIMINATOR && !fields.all.contains(&key.as_str()))
    {
        return Err(if fields.all.is_empty() {
            format!("the step `{op}` takes no fields, but has `{unknown}`")
        } else {
            format!(
                "the step `{op}` has no field `{unknown}`; its fields are {}",
                fields.all.join(", ")
            )
        });
    }
    let missing: Vec<&str> = fields
        .required
        .iter()
        .copied()
        .filter(|name| !object.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let mut names: Vec<String> = missing.iter().map(|name| format!("`{name}`")).collect();
        let last = names.pop().unwrap_or_default();
        let needs = if names.is_empty() {
            last
        } else {
            format!("{} and {last}", names.join(", "))
        };
        return Err(format!("the step `{op}` needs {needs}"));
    }
    Ok(())
}

/// The fields of one op, as its schema declares them.
#[derive(Debug, Default)]
struct OpFields {
    all: Vec<&'static str>,
    required: Vec<&'static str>,
}

/// The name of the field that says which op a step is.
const DISCRIMINATOR: &str = "op";

/// Each op's fields, read from the schemas the spec is generated from, so this list cannot
/// drift from the step types.
fn fields_by_op() -> &'static HashMap<String, OpFields> {
    static FIELDS: OnceLock<HashMap<String, OpFields>> = OnceLock::new();
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
                let mut fields = OpFields::default();
                collect_fields(
                    &registry,
                    &MetaSchemaRef::Reference(schema_name(reference)),
                    &mut fields,
                );
                fields.all.retain(|name| *name != DISCRIMINATOR);
                fields.required.retain(|name| *name != DISCRIMINATOR);
                (op.clone(), fields)
            })
            .collect()
    })
}

/// A schema's name from its reference (`#/components/schemas/ResizeStep`).
fn schema_name(reference: &str) -> String {
    reference.rsplit('/').next().unwrap_or(reference).to_owned()
}

/// The schema `schema` is or refers to, looked up in `registry`.
pub(super) fn resolve<'a>(
    registry: &'a Registry,
    schema: &'a MetaSchemaRef,
) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(schema) => Some(schema),
        MetaSchemaRef::Reference(name) => registry.schemas.get(&schema_name(name)),
    }
}

/// The property names of a schema, and which are required, through references and `allOf`
/// (a union's variant is `allOf` of its `op` and the step's own object).
fn collect_fields(registry: &Registry, schema: &MetaSchemaRef, fields: &mut OpFields) {
    let Some(schema) = resolve(registry, schema) else {
        return;
    };
    fields
        .all
        .extend(schema.properties.iter().map(|(name, _)| *name));
    fields.required.extend(schema.required.iter().copied());
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
        assert!(fields["resize"].all.contains(&"height"));
        assert!(fields["rotate"].all.contains(&"angle"));
        assert_eq!(fields["rotate"].required, ["angle"]);
        assert!(fields["grayscale"].all.is_empty());
    }

    #[test]
    fn steps_a_person_got_wrong_are_refused_in_the_step_language() {
        let refusal = |step: Value| check_fields(&step).unwrap_err();
        let error = refusal(serde_json::json!({"op": "sepia"}));
        assert!(
            error.starts_with("\"sepia\" is not an op") && error.contains("grayscale"),
            "{error}"
        );
        let error = refusal(serde_json::json!({"width": 10}));
        assert!(error.contains("no `op`"), "{error}");
        let error = refusal(serde_json::json!("resize"));
        assert!(error.contains("a JSON object"), "{error}");
        let error = refusal(serde_json::json!({"op": "crop", "x": 1}));
        assert_eq!(error, "the step `crop` needs `y`, `width` and `height`");
        assert!(check_fields(&serde_json::json!({"op": "blur", "sigma": 2.0})).is_ok());
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
