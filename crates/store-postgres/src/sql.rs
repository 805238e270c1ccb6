//! [`Sql`]: a query written as SQL text with `$n` placeholders and typed
//! binds, run through diesel-async — and, unlike `diesel::sql_query`, kept in
//! each connection's prepared-statement cache, so a hot query costs one round
//! trip once it has been seen.

use std::borrow::Cow;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error as DieselError, QueryResult};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Jsonb, Nullable, Text, Untyped};
use serde_json::Value;

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(Option<String>),
    BigInt(Option<i64>),
    Int(Option<i32>),
    Bool(bool),
    Jsonb(Option<Value>),
    TextArray(Vec<Option<String>>),
    BigIntArray(Vec<Option<i64>>),
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Self::BigInt(Some(v))
    }
}

impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Self::BigInt(v)
    }
}

impl From<i32> for Bind {
    fn from(v: i32) -> Self {
        Self::Int(Some(v))
    }
}

impl From<bool> for Bind {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<Value> for Bind {
    fn from(v: Value) -> Self {
        Self::Jsonb(Some(v))
    }
}

impl From<Option<Value>> for Bind {
    fn from(v: Option<Value>) -> Self {
        Self::Jsonb(v)
    }
}

impl From<Vec<Option<String>>> for Bind {
    fn from(v: Vec<Option<String>>) -> Self {
        Self::TextArray(v)
    }
}

impl From<Vec<Option<i64>>> for Bind {
    fn from(v: Vec<Option<i64>>) -> Self {
        Self::BigIntArray(v)
    }
}

impl Bind {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        match self {
            Self::Text(v) => out.push_bind_param::<Nullable<Text>, _>(v),
            Self::BigInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v),
            Self::Int(v) => out.push_bind_param::<Nullable<Integer>, _>(v),
            Self::Bool(v) => out.push_bind_param::<Bool, _>(v),
            Self::Jsonb(v) => out.push_bind_param::<Nullable<Jsonb>, _>(v),
            Self::TextArray(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v),
            Self::BigIntArray(v) => out.push_bind_param::<Array<Nullable<BigInt>>, _>(v),
        }
    }
}

/// SQL text with `$1`, `$2`, … placeholders (each may appear more than once)
/// and the values bound to them.
///
/// Placeholders inside `--` comments and `'…'` literals are left alone; the
/// text must not use dollar quoting (the queries of this crate do not).
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    text: Cow<'static, str>,
    binds: Vec<Bind>,
}

impl Sql {
    /// A query; bind its placeholders in order with [`Sql::bind`].
    pub(crate) fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, value: impl Into<Bind>) -> Self {
        self.binds.push(value.into());
        self
    }
}

impl QueryFragment<Pg> for Sql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // diesel numbers the placeholders it writes in the order they are
        // pushed, so each `$n` of the text is replaced by a push of bind n.
        // `--` comments and '…' literals are copied as they are.
        let text: &str = &self.text;
        let bytes = text.as_bytes();
        let (mut i, mut copied) = (0, 0);
        while i < bytes.len() {
            match bytes[i] {
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                }
                b'\'' => {
                    // '' inside a literal reads as two literals in a row.
                    i = text[i + 1..].find('\'').map_or(bytes.len(), |n| i + n + 2);
                }
                b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    out.push_sql(&text[copied..i]);
                    let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                    let number = &text[i + 1..i + 1 + digits];
                    let bind = number
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|n| self.binds.get(n))
                        .ok_or_else(|| {
                            DieselError::QueryBuilderError(
                                format!("placeholder ${number} has no bind ({} bound)", self.binds.len()).into(),
                            )
                        })?;
                    bind.push(&mut out)?;
                    i += 1 + digits;
                    copied = i;
                }
                _ => i += 1,
            }
        }
        out.push_sql(&text[copied..]);
        Ok(())
    }
}

impl QueryId for Sql {
    type QueryId = ();

    // Cached by SQL text and bind types, not by Rust type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::debug_query;

    #[test]
    fn placeholders_are_renumbered_in_text_order() {
        let sql = Sql::new("-- $1 is x\nSELECT $2, $1, $2, '$1' || '''$2' || x FROM t WHERE y = $1 -- $3")
            .bind(1_i64)
            .bind("two");
        let shown = debug_query::<Pg, _>(&sql).to_string();
        assert!(
            shown.starts_with("-- $1 is x\nSELECT $1, $2, $3, '$1' || '''$2' || x FROM t WHERE y = $4 -- $3"),
            "{shown}"
        );
        assert!(
            shown.contains(r#"Some("two"), Some(1), Some("two"), Some(1)"#),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_bind_is_an_error() {
        use std::fmt::Write;
        let sql = Sql::new("SELECT $3").bind(1_i64);
        let mut text = String::new();
        assert!(write!(text, "{}", debug_query::<Pg, _>(&sql)).is_err());
    }
}
