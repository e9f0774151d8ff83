//! The `file` part of an upload form, read in one pass into one buffer.
//!
//! poem-openapi's `Binary<Vec<u8>>` reads a part through a 2 KiB stack buffer: every byte of
//! a photo is copied twice (into the stack buffer, then onto the end of the growing vector)
//! in some 750 reads for 1.5 MB. Here the part is read straight into the vector's spare
//! room, chunk by chunk as the body arrives. The spec is the same (`string`, `binary`).

use std::borrow::Cow;

use poem::web::Field;
use poem_openapi::registry::MetaSchemaRef;
use poem_openapi::types::{Binary, ParseError, ParseFromMultipartField, ParseResult, Type};
use tokio::io::AsyncReadExt;

/// Room reserved before the first byte arrives: most photos are a few hundred KB to a few
/// MB, so a quarter of a MiB skips the small steps of the vector's doubling. A smaller file
/// gives the rest back when `read_file` shrinks it.
const FIRST_RESERVE: usize = 256 * 1024;

/// The file's bytes, as sent.
#[derive(Debug, Clone, Default)]
pub struct FilePart(pub Vec<u8>);

impl Type for FilePart {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        <Binary<Vec<u8>> as Type>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        <Binary<Vec<u8>> as Type>::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromMultipartField for FilePart {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        let field = field.ok_or_else(ParseError::expected_input)?;
        let mut bytes = Vec::with_capacity(FIRST_RESERVE);
        field
            .into_async_read()
            .read_to_end(&mut bytes)
            .await
            .map_err(ParseError::custom)?;
        Ok(Self(bytes))
    }
}
