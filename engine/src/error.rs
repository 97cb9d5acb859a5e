//! One error type for the whole engine, carrying TensorFlow's canonical status codes.

use std::fmt;

/// TensorFlow's canonical error codes (`tensorflow/core/protobuf/error_codes.proto`).
///
/// Every [`Error`] carries one, so callers can branch on the class of failure (the
/// monitored session retries only [`Code::Aborted`] and [`Code::Unavailable`]) without
/// parsing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The operation was cancelled.
    Cancelled,
    /// An unknown error.
    Unknown,
    /// The caller gave an argument that is invalid whatever the system state.
    InvalidArgument,
    /// A deadline expired before the operation could complete.
    DeadlineExceeded,
    /// A requested entity (file, variable, tensor) was not found.
    NotFound,
    /// An entity the caller tried to create already exists.
    AlreadyExists,
    /// The caller lacks permission.
    PermissionDenied,
    /// A resource (memory, a device limit) is exhausted.
    ResourceExhausted,
    /// The system is not in a state required for the operation.
    FailedPrecondition,
    /// The operation was aborted, typically by a concurrency problem or a lost device;
    /// retrying the whole step may succeed.
    Aborted,
    /// An operation went past a valid range (the end of input).
    OutOfRange,
    /// The operation is not implemented or not supported.
    Unimplemented,
    /// An invariant of the system is broken: a bug, or a driver rejecting valid work.
    Internal,
    /// The service is unavailable for now; retrying may succeed.
    Unavailable,
    /// Unrecoverable data loss or corruption.
    DataLoss,
}

impl Code {
    /// The name TensorFlow prints for this code.
    pub fn name(self) -> &'static str {
        match self {
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
        }
    }

    /// Every code, in the order of their values.
    pub const ALL: [Code; 15] = [
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
    ];

    /// The code whose numeric value in TensorFlow's protos is `value`, if any.
    pub fn from_value(value: i32) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.value() == value)
    }

    /// The numeric value of the code in TensorFlow's protos.
    pub fn value(self) -> i32 {
        match self {
            Code::Cancelled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Aborted => 10,
            Code::OutOfRange => 11,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::DataLoss => 15,
        }
    }

    /// Whether a step that failed with this code may succeed when retried on a fresh
    /// session (TF's recoverable errors: Aborted and Unavailable).
    pub fn is_recoverable(self) -> bool {
        matches!(self, Code::Aborted | Code::Unavailable)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine error: a canonical [`Code`] and a message naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The canonical class of the failure.
    pub code: Code,
    /// What went wrong, naming the tensor, op, file or step involved.
    pub message: String,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// [`Code::InvalidArgument`]: bad input whatever the state of the system.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// [`Code::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// [`Code::FailedPrecondition`].
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }

    /// [`Code::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// [`Code::Aborted`].
    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(Code::Aborted, message)
    }

    /// [`Code::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    /// [`Code::ResourceExhausted`].
    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, message)
    }

    /// [`Code::Unimplemented`].
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Code::Unimplemented, message)
    }

    /// The same error with `context` put in front of the message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// A local I/O error on `what` (a path) with the code it means, as TF maps errno:
    /// NotFound, AlreadyExists, PermissionDenied (also a read-only file system),
    /// FailedPrecondition for a path that is (not) a directory where it must (not) be,
    /// ResourceExhausted for a full disk or quota (ENOSPC, EDQUOT) or a file too large,
    /// DataLoss for unexpected end of file or invalid data, DeadlineExceeded for a time
    /// out, Unknown for the rest. None of them is recoverable by re-creating a session:
    /// only a lost device (or peer) is.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        Self::new(io_code(e), format!("{what}: {e}"))
    }
}

/// The canonical code of a local I/O error (see [`Error::io`]).
pub fn io_code(e: &std::io::Error) -> Code {
    use std::io::ErrorKind as K;
    // ENOSPC (28 everywhere) and EDQUOT (69 on macOS and the BSDs, 122 on Linux),
    // whatever kind the platform gives them.
    const EDQUOT: i32 = if cfg!(target_os = "linux") { 122 } else { 69 };
    if matches!(e.raw_os_error(), Some(c) if c == 28 || c == EDQUOT) {
        return Code::ResourceExhausted;
    }
    match e.kind() {
        K::NotFound => Code::NotFound,
        K::AlreadyExists => Code::AlreadyExists,
        K::PermissionDenied | K::ReadOnlyFilesystem => Code::PermissionDenied,
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge | K::OutOfMemory => {
            Code::ResourceExhausted
        }
        K::UnexpectedEof | K::InvalidData => Code::DataLoss,
        K::TimedOut => Code::DeadlineExceeded,
        K::NotADirectory | K::IsADirectory | K::DirectoryNotEmpty => Code::FailedPrecondition,
        K::InvalidInput | K::InvalidFilename => Code::InvalidArgument,
        _ => Code::Unknown,
    }
}
