//! The `steps` field of an upload form, as the spec describes it and as clients send it.
//!
//! The spec declares `steps` an array of step objects. Hand-written clients (curl, the
//! README) send one part holding the whole JSON array; generated clients follow the OpenAPI
//! multipart encoding and send one part per step, each a JSON object. Both are accepted, and
//! parts are joined in the order they arrive.

use std::borrow::Cow;

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
    let steps = match value {
        Value::Array(_) => {
            Vec::<StepRequest>::parse_from_json(Some(value)).map_err(ParseError::propagate)?
        }
        single => vec![StepRequest::parse_from_json(Some(single)).map_err(ParseError::propagate)?],
    };
    Ok(steps)
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
