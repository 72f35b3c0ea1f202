//! The crate's single error type.
//!
//! The store has no peers and no transport, so the usual three-way split becomes:
//! - caller misuse: [`StoreError::Invalid`], [`StoreError::NotFound`] (fix the call, retrying is useless);
//! - the database file cannot be used by this build: [`StoreError::NewerSchema`],
//!   [`StoreError::ForeignDatabase`] (tell the person; never "repair" it);
//! - SQLite itself failed (disk full, I/O error, lock held too long): [`StoreError::Sqlite`].
//!
//! [`StoreError::ChangeFailed`] wraps one of the above with the index of the change in a batch
//! that caused the whole batch to be rolled back.

/// Everything that can go wrong in `lyrebird-store`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error (I/O, full disk, busy beyond the timeout, constraint violated).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The file was written by a newer Lyrebird whose schema this build does not know.
    /// Opening it anyway could silently drop data, so we refuse.
    #[error("database schema version {found} is newer than the {supported} this build supports")]
    NewerSchema {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The highest migration this build knows.
        supported: i64,
    },

    /// The file is a SQLite database that belongs to some other application
    /// (its `PRAGMA application_id` is set and is not Lyrebird's).
    #[error("not a Lyrebird database (application_id {found:#010x})")]
    ForeignDatabase {
        /// The `application_id` found.
        found: i32,
    },

    /// A referenced row (account, conversation, message, call) does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// The caller passed a value the store does not accept (empty identifier, negative size,
    /// end before start, settings that are not a JSON object, ...).
    #[error("invalid input: {0}")]
    Invalid(String),

    /// Change number `index` of a batch failed; nothing of the batch was written.
    #[error("change {index} of the batch failed, batch rolled back: {source}")]
    ChangeFailed {
        /// Position of the failing change in the slice given to `Store::apply`.
        index: usize,
        /// Why it failed.
        #[source]
        source: Box<StoreError>,
    },
}

impl StoreError {
    /// The innermost error, looking through [`StoreError::ChangeFailed`].
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::ChangeFailed { source, .. } => source.root(),
            other => other,
        }
    }
}
