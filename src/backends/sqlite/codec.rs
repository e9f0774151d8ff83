//! How an `images` row maps to and from SQLite values: ids as text, times as epoch
//! microseconds, JSON as text (see `sql/sqlite/`).

use std::error::Error as StdError;

use chrono::{DateTime, Utc};
use pixmill_actors::ports::JobMessage;
use pixmill_actors::{ImageId, ImageRecord, JobError, Owner, Status};
use rusqlite::types::Type;
use rusqlite::Row;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The columns every read selects, in the order [`read_row`] expects.
pub const COLUMNS: &str = "id, owner, status, spec, original, variants, error_code, \
     error_message, attempts, created_at, updated_at, lease_expires_at, dispatch_at, \
     callback_url";
/// The columns a due dispatch is read from, in the order [`read_dispatch`] expects: all
/// the relay publishes, and not the whole record.
pub const DISPATCH_COLUMNS: &str = "id, owner, dispatch_at, request_id";

/// A row as read: the record plus the bookkeeping the engine never sees.
pub struct StoredRow {
    pub record: ImageRecord,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub dispatch_at: Option<DateTime<Utc>>,
}

/// Decodes a row selected with [`COLUMNS`]. A value that does not decode (a row written
/// by hand, a newer schema) becomes a conversion error naming the column.
pub fn read_row(row: &Row<'_>) -> rusqlite::Result<StoredRow> {
    let error = match (
        row.get::<_, Option<String>>(6)?,
        row.get::<_, Option<String>>(7)?,
    ) {
        (Some(code), Some(message)) => Some(JobError { code, message }),
        _ => None,
    };
    let record = ImageRecord {
        id: parse_text(row, 0, |s| s.parse::<ImageId>())?,
        owner: parse_text(row, 1, Owner::parse)?,
        status: parse_text(row, 2, |s| s.parse::<Status>())?,
        spec: json_column(row, 3)?,
        original: json_column(row, 4)?,
        variants: json_column(row, 5)?,
        error,
        attempts: row.get(8)?,
        created_at: time_column(row, 9)?,
        updated_at: time_column(row, 10)?,
        callback_url: row.get(13)?,
    };
    Ok(StoredRow {
        record,
        lease_expires_at: optional_time_column(row, 11)?,
        dispatch_at: optional_time_column(row, 12)?,
    })
}

/// Decodes a row selected with [`DISPATCH_COLUMNS`]: the job to publish and when it fell
/// due.
pub fn read_dispatch(row: &Row<'_>) -> rusqlite::Result<(JobMessage, DateTime<Utc>)> {
    let job = JobMessage {
        image_id: parse_text(row, 0, |s| s.parse::<ImageId>())?,
        owner: parse_text(row, 1, Owner::parse)?,
        trace_id: row.get(3)?,
    };
    Ok((job, time_column(row, 2)?))
}

/// A time as stored: microseconds since the Unix epoch.
pub fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// A value as stored JSON text.
pub fn json_text<T: Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn conversion(
    index: usize,
    kind: Type,
    error: impl StdError + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, kind, Box::new(error))
}

fn parse_text<T, E>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: StdError + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    parse(text).map_err(|e| conversion(index, Type::Text, e))
}

fn json_column<T: DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| conversion(index, Type::Text, e))
}

fn time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let raw: i64 = row.get(index)?;
    from_micros(index, raw)
}

fn optional_time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let raw: Option<i64> = row.get(index)?;
    raw.map(|raw| from_micros(index, raw)).transpose()
}

fn from_micros(index: usize, raw: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(raw).ok_or(rusqlite::Error::IntegralValueOutOfRange(index, raw))
}
