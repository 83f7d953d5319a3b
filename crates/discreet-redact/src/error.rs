/// Why a message could not be rewritten. None of these carries a field value: they are
/// safe to log and to return to a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("malformed protobuf: truncated input")]
    Truncated,
    #[error("malformed protobuf: varint longer than 10 bytes")]
    VarintOverflow,
    #[error("malformed protobuf: field number 0 or above 2^29-1")]
    BadFieldNumber,
    #[error("malformed protobuf: length of field {field} runs past the end of its message")]
    LengthOverrun { field: u32 },
    #[error(
        "malformed protobuf: field {field} has wire type {wire_type}, which its schema type cannot have"
    )]
    WireTypeMismatch { field: u32, wire_type: u8 },
    #[error("malformed protobuf: wire type {0} is not supported (groups are not allowed)")]
    UnsupportedWireType(u8),
    #[error("malformed protobuf: string field {field} is not valid UTF-8")]
    InvalidUtf8 { field: u32 },
    #[error("malformed protobuf: packed field {field} does not hold whole values")]
    BadPacked { field: u32 },
    #[error("malformed protobuf: messages nested deeper than {0}")]
    TooDeep(u32),
}
