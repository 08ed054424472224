//! The seam between the service's queries ([`super::Tx`]) and a backend's connection: SQL
//! text with positional parameters in, rows of plain values out. Four column types are
//! all the schema uses.

use super::DbError;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Blob(b.to_vec())
    }
}

impl From<Option<i64>> for Value {
    fn from(n: Option<i64>) -> Self {
        n.map_or(Value::Null, Value::Int)
    }
}

impl Value {
    pub(crate) fn text(self, what: &str) -> Result<String, DbError> {
        match self {
            Value::Text(s) => Ok(s),
            other => Err(unexpected(what, "text", &other)),
        }
    }

    pub(crate) fn blob(self, what: &str) -> Result<Vec<u8>, DbError> {
        match self {
            Value::Blob(b) => Ok(b),
            other => Err(unexpected(what, "bytes", &other)),
        }
    }

    pub(crate) fn int(self, what: &str) -> Result<i64, DbError> {
        match self {
            Value::Int(n) => Ok(n),
            other => Err(unexpected(what, "integer", &other)),
        }
    }

    pub(crate) fn opt_int(self, what: &str) -> Result<Option<i64>, DbError> {
        match self {
            Value::Null => Ok(None),
            other => other.int(what).map(Some),
        }
    }
}

fn unexpected(what: &str, want: &str, got: &Value) -> DbError {
    let kind = match got {
        Value::Null => "null",
        Value::Int(_) => "an integer",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    };
    DbError::Damaged {
        what: what.to_string(),
        why: format!("expected {want}, found {kind}"),
    }
}

/// One connection of a backend, inside the transaction a [`super::Database::begin`] made.
pub(crate) trait Conn {
    /// Runs a statement that changes the database; returns the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs a query; returns its rows.
    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError>;
    /// Makes the transaction's changes durable.
    fn commit(&mut self) -> Result<(), DbError>;
    /// Drops the transaction's changes (also what happens to a connection dropped
    /// without a commit).
    fn rollback(&mut self);
}
