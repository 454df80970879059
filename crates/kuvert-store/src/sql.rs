//! SQL helpers for both databases: numbered placeholders, multi-row INSERTs within the
//! bind limit, and statements cut to a size.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Transaction};

use crate::Result;

/// Most bytes of message content in one statement: far below PostgreSQL's limit of a
/// protocol message (1 GiB), and bounding the copy the bound arguments make.
pub(crate) const MAX_STATEMENT_BYTES: usize = 32 << 20;

/// `rows` in consecutive parts whose `size` adds up to at most `MAX_STATEMENT_BYTES` (a
/// larger row is a part of its own).
pub(crate) fn by_bytes<T>(rows: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let n = size(row);
        if i > start && bytes + n > MAX_STATEMENT_BYTES {
            parts.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < rows.len() {
        parts.push(&rows[start..]);
    }
    parts
}

/// Most values bound in one statement, well within SQLite's (32,766) and PostgreSQL's
/// (65,535) limits.
pub(crate) const MAX_BINDS: usize = 8_000;

pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// `head VALUES (..), (..) tail` for `rows`, `width` values each, bound by `bind`, in as
/// many statements as the bind limit needs; returns what `tail` (a RETURNING) gives back.
/// Each row count is its own prepared statement; batches come in a few common sizes.
pub(crate) async fn insert_rows<T>(
    tx: &mut Transaction<'_, Any>,
    head: &str,
    width: usize,
    tail: &str,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> Result<Vec<AnyRow>> {
    let mut returned = Vec::new();
    let positional = tx.backend_name() == SQLITE;
    for chunk in rows.chunks((MAX_BINDS / width).max(1)) {
        let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * width * 5);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for row in 0..chunk.len() {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            sql.push_str(&params(positional, row * width + 1, width));
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            q = bind(q, row);
        }
        if tail.is_empty() {
            q.execute(&mut **tx).await?;
        } else {
            returned.extend(q.fetch_all(&mut **tx).await?);
        }
    }
    Ok(returned)
}

/// What sqlx's `Any` connection calls SQLite.
pub(crate) const SQLITE: &str = "SQLite";

/// `n` placeholders from the `first`: numbered (`$1, $2`), or on SQLite, for statements
/// whose every parameter is written so, positional (`?, ?`). Binding numbered parameters is
/// quadratic on SQLite (sqlx asks each one's name, and SQLite finds a name by walking the
/// statement's list of them): at thousands of values a statement, binding took most of a
/// contact import's time; positional ones have no names to look up.
pub(crate) fn params(positional: bool, first: usize, n: usize) -> String {
    if positional {
        return vec!["?"; n].join(", ");
    }
    placeholders(first, n)
}

/// `$first, $first+1, ...`: `n` numbered placeholders.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_under_the_byte_limit() {
        let mb = 1 << 20;
        let sizes = [10 * mb, 10 * mb, 10 * mb, 10 * mb, 40 * mb, mb];
        let parts: Vec<usize> = by_bytes(&sizes, |&n| n).iter().map(|p| p.len()).collect();
        assert_eq!(
            parts,
            [3, 1, 1, 1],
            "30 MB, then 10, then the 40 MB row alone, then 1"
        );
        assert!(by_bytes(&[] as &[usize], |&n| n).is_empty());
    }
}
