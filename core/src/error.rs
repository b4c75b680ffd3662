//! Error replies of the protocol.

/// A field named in `missing_field` and `invalid_field` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// `location`
    Location,
    /// `temp`
    Temp,
    /// `hum`
    Hum,
    /// `seq`
    Seq,
    /// `cmd`
    Cmd,
}

impl Field {
    /// The key as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::Location => "location",
            Field::Temp => "temp",
            Field::Hum => "hum",
            Field::Seq => "seq",
            Field::Cmd => "cmd",
        }
    }
}

/// Every error reply of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// A line over 512 bytes.
    LineTooLong,
    /// A line that is not UTF-8.
    InvalidUtf8,
    /// Not exactly one JSON object, or a syntax error.
    InvalidJson,
    /// A reading lacks `location`, `temp` or `hum`.
    MissingField(Field),
    /// A key has the wrong type or breaks its rule.
    InvalidField(Field),
    /// `cmd` names no command.
    UnknownCmd,
    /// `latest` for a location never stored.
    UnknownLocation,
    /// A reading of a new location when the store is full.
    StoreFull,
    /// A reading could not be kept (the host's disk write failed); it was
    /// not stored.
    StorageError,
    /// The server is at its connection limit.
    Busy,
    /// No complete line for the idle timeout.
    IdleTimeout,
    /// The server is stopping.
    ShuttingDown,
}

impl ErrorCode {
    /// The `error` value as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::InvalidUtf8 => "invalid_utf8",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingField(_) => "missing_field",
            ErrorCode::InvalidField(_) => "invalid_field",
            ErrorCode::UnknownCmd => "unknown_cmd",
            ErrorCode::UnknownLocation => "unknown_location",
            ErrorCode::StoreFull => "store_full",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::Busy => "busy",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::ShuttingDown => "shutting_down",
        }
    }

    /// The field named by the reply, if it names one.
    pub const fn field(self) -> Option<Field> {
        match self {
            ErrorCode::MissingField(f) | ErrorCode::InvalidField(f) => Some(f),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_field_errors_name_a_field() {
        assert_eq!(
            ErrorCode::MissingField(Field::Hum).field(),
            Some(Field::Hum)
        );
        assert_eq!(
            ErrorCode::InvalidField(Field::Seq).field(),
            Some(Field::Seq)
        );
        assert_eq!(ErrorCode::Busy.field(), None);
        assert_eq!(ErrorCode::InvalidJson.field(), None);
    }
}
