//! The content manifest of a backup: per table, an exact row count and an order-independent digest of
//! its rows, computed from the dump stream itself while it passes (the database is not read twice),
//! and the comparison a restore or drill makes against a dump of what it restored.
//!
//! Rows are the data lines of each `COPY … FROM stdin;` block (pg_dump plain format: one line per
//! row, newlines inside values escaped) and the tuples of each `INSERT INTO `t` VALUES (…),(…);`
//! statement (mariadb-dump), parsed quote-aware. A row's digest is its 128-bit XXH3 (made to catch
//! accidental change at memory speed; the backup's bytes are what the SHA-256 protects); a table's is
//! their sum modulo 2¹²⁸, so row order does not matter and a duplicated row still counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3Default;

use crate::EngineType;

/// The manifest's version, so a later format is never compared as this one.
pub const FORMAT: u32 = 1;

/// How a manifest sidecar's name ends.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The sidecar blob a backup's manifest is kept in, beside the backup.
pub fn manifest_blob(backup_blob: &str) -> String {
    format!("{backup_blob}{MANIFEST_SUFFIX}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableTally {
    /// As the dump names it: `schema.table` (PostgreSQL), `table` (MariaDB).
    pub table: String,
    pub rows: u64,
    /// 32 hex digits.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    pub format: u32,
    pub engine: EngineType,
    pub tables: Vec<TableTally>,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The manifest of a selective restore: only `chosen`'s tables (a PostgreSQL manifest's names are
    /// pg_dump's, quoted where needed).
    pub fn only(&self, chosen: &[crate::format::TableName]) -> Manifest {
        let keep =
            |t: &TableTally| crate::format::TableName::of_manifest(&t.table).is_some_and(|n| chosen.contains(&n));
        Manifest { tables: self.tables.iter().filter(|t| keep(t)).cloned().collect(), ..self.clone() }
    }
}

/// How one table of the restored database differs from the backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableMismatch {
    pub table: String,
    /// Rows the backup holds; absent when the table is not in the backup.
    pub expected_rows: Option<u64>,
    /// Rows the restored database holds; absent when the table did not come back.
    pub actual_rows: Option<u64>,
    /// Same count, different content (or a table missing on one side).
    pub content_differs: bool,
}

impl TableMismatch {
    /// In words, e.g. "public.items: 2999 rows restored, 3000 in the backup (1 missing)".
    pub fn describe(&self) -> String {
        match (self.expected_rows, self.actual_rows) {
            (Some(e), None) => format!("{}: in the backup ({e} rows) but not restored", self.table),
            (None, Some(a)) => format!("{}: restored ({a} rows) but not in the backup", self.table),
            (Some(e), Some(a)) if e != a => {
                let diff = if a < e { format!("{} missing", e - a) } else { format!("{} extra", a - e) };
                format!("{}: {a} rows restored, {e} in the backup ({diff})", self.table)
            }
            _ => format!("{}: same row count, different content", self.table),
        }
    }
}

/// The outcome of checking a restored database against its backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    pub tables_checked: u32,
    pub rows_checked: u64,
    /// At most [`MAX_MISMATCHES`] listed; `mismatched_tables` counts them all.
    pub mismatches: Vec<TableMismatch>,
    pub mismatched_tables: u32,
}

/// Mismatches listed one by one (a row in Table storage is bounded; the count says the rest).
pub const MAX_MISMATCHES: usize = 50;

impl Comparison {
    pub fn passed(&self) -> bool {
        self.mismatched_tables == 0
    }

    /// One line: "3 tables, 6010 rows identical" or the first differences.
    pub fn summary(&self) -> String {
        if self.passed() {
            return format!("{} tables, {} rows identical to the backup", self.tables_checked, self.rows_checked);
        }
        let first: Vec<String> = self.mismatches.iter().take(3).map(TableMismatch::describe).collect();
        let more = self.mismatched_tables as usize - first.len();
        let more = if more > 0 { format!("; {more} more tables differ") } else { String::new() };
        format!("{} of {} tables differ: {}{more}", self.mismatched_tables, self.tables_checked, first.join("; "))
    }
}

/// Compares what was restored (`actual`) with what was backed up (`expected`), table by table.
pub fn compare(expected: &Manifest, actual: &Manifest) -> Comparison {
    let want: BTreeMap<&str, &TableTally> = expected.tables.iter().map(|t| (t.table.as_str(), t)).collect();
    let got: BTreeMap<&str, &TableTally> = actual.tables.iter().map(|t| (t.table.as_str(), t)).collect();
    let mut names: Vec<&str> = want.keys().chain(got.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    let mut mismatches = Vec::new();
    for name in &names {
        let (e, a) = (want.get(name), got.get(name));
        if let (Some(e), Some(a)) = (e, a) {
            if e.rows == a.rows && e.digest == a.digest {
                continue;
            }
        }
        mismatches.push(TableMismatch {
            table: name.to_string(),
            expected_rows: e.map(|t| t.rows),
            actual_rows: a.map(|t| t.rows),
            content_differs: true,
        });
    }
    let mismatched_tables = mismatches.len() as u32;
    mismatches.truncate(MAX_MISMATCHES);
    Comparison { tables_checked: names.len() as u32, rows_checked: actual.rows(), mismatches, mismatched_tables }
}

/// Lines longer than this outside a data block are not statements we look at (only their start is).
const HEAD_CAP: usize = 64 << 10;

enum State {
    /// Between statements, collecting the start of the current line.
    Line,
    /// Inside a PostgreSQL `COPY` block: each line is a row until `\.`.
    Copy { table: String, row_start: bool, first: [u8; 2], len: usize },
    /// Inside a MariaDB `INSERT … VALUES`: tuples until the `;` outside any tuple or string.
    Insert { table: String, depth: u32, quote: Option<u8>, escaped: bool },
}

#[derive(Default)]
struct Sum {
    rows: u64,
    digest: u128,
}

/// Reads a dump as it streams (any chunking) and tallies its rows per table. Memory: one line start.
pub struct Tally {
    engine: EngineType,
    state: State,
    head: Vec<u8>,
    row: Xxh3Default,
    tables: BTreeMap<String, Sum>,
}

impl Tally {
    pub fn new(engine: EngineType) -> Self {
        Tally { engine, state: State::Line, head: Vec::new(), row: Xxh3Default::new(), tables: BTreeMap::new() }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let used = match self.state {
                State::Line => self.line(data),
                State::Copy { .. } => self.copy(data),
                State::Insert { .. } => self.insert(data),
            };
            data = &data[used..];
        }
    }

    pub fn finish(self) -> Manifest {
        let tables = self
            .tables
            .into_iter()
            .map(|(table, s)| TableTally { table, rows: s.rows, digest: format!("{:032x}", s.digest) })
            .collect();
        Manifest { format: FORMAT, engine: self.engine, tables }
    }

    fn add_row(&mut self, table: &str) {
        let part = self.row.digest128();
        self.row.reset();
        let sum = self.tables.entry(table.to_string()).or_default();
        sum.rows += 1;
        sum.digest = sum.digest.wrapping_add(part);
    }

    /// Collects a line start; at its end (or at the `(` opening an INSERT's first tuple) decides.
    fn line(&mut self, data: &[u8]) -> usize {
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                self.end_of_line();
                return i + 1;
            }
            if self.head.len() < HEAD_CAP {
                self.head.push(b);
            }
            if b == b'(' && self.engine == EngineType::Mysql {
                if let Some(table) = insert_target(&self.head, b" VALUES (") {
                    self.head.clear();
                    self.row.reset();
                    self.state = State::Insert { table, depth: 1, quote: None, escaped: false };
                    return i + 1;
                }
            }
        }
        data.len()
    }

    fn end_of_line(&mut self) {
        let head = std::mem::take(&mut self.head);
        match self.engine {
            EngineType::Postgresql => {
                if let Some(table) = copy_target(&head) {
                    self.tables.entry(table.clone()).or_default();
                    self.state = State::Copy { table, row_start: true, first: [0; 2], len: 0 };
                }
            }
            EngineType::Mysql => {
                if let Some(table) = head.strip_prefix(b"CREATE TABLE ").and_then(backquoted) {
                    self.tables.entry(table).or_default();
                } else if let Some(table) = insert_target(&head, b" VALUES") {
                    // mariadb-dump 10.11+: one tuple per line after `VALUES`.
                    self.state = State::Insert { table, depth: 0, quote: None, escaped: false };
                }
            }
            _ => {}
        }
        self.head = head;
        self.head.clear();
    }

    fn copy(&mut self, data: &[u8]) -> usize {
        let State::Copy { table, mut row_start, mut first, mut len } = std::mem::replace(&mut self.state, State::Line)
        else {
            unreachable!("called in a COPY block")
        };
        if row_start {
            self.row.reset();
            (row_start, len) = (false, 0);
        }
        let end = data.iter().position(|&b| b == b'\n');
        let part = &data[..end.unwrap_or(data.len())];
        for (k, &b) in part.iter().enumerate().take(2usize.saturating_sub(len)) {
            first[len + k] = b;
        }
        len += part.len();
        self.row.update(part);
        let used = match end {
            None => data.len(),
            // The block's end: back to statements.
            Some(_) if len == 2 && &first == b"\\." => return end.map_or(data.len(), |e| e + 1),
            Some(e) => {
                self.add_row(&table);
                row_start = true;
                e + 1
            }
        };
        self.state = State::Copy { table, row_start, first, len };
        used
    }

    fn insert(&mut self, data: &[u8]) -> usize {
        let State::Insert { table, mut depth, mut quote, mut escaped } =
            std::mem::replace(&mut self.state, State::Line)
        else {
            unreachable!("called in an INSERT")
        };
        // Bytes of the current tuple from here are hashed in one go at its end or the chunk's.
        let mut from = (depth > 0).then_some(0);
        for (i, &b) in data.iter().enumerate() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
                continue;
            }
            match b {
                b'\'' | b'"' if depth > 0 => quote = Some(b),
                b'(' => {
                    if depth == 0 {
                        from = Some(i + 1);
                        self.row.reset();
                    }
                    depth += 1;
                }
                b')' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        self.row.update(&data[from.take().unwrap_or(0)..i]);
                        self.add_row(&table);
                    }
                }
                // The statement's end: back to statements (state is already `Line`).
                b';' if depth == 0 => return i + 1,
                _ => {}
            }
        }
        if let Some(from) = from {
            self.row.update(&data[from..]);
        }
        self.state = State::Insert { table, depth, quote, escaped };
        data.len()
    }
}

/// `COPY public.items (id, name) FROM stdin;` → `public.items`.
fn copy_target(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"COPY ")?;
    if !line.ends_with(b" FROM stdin;") {
        return None;
    }
    let rest = std::str::from_utf8(rest).ok()?;
    let end = rest.find(" (").or_else(|| rest.find(" FROM stdin;"))?;
    Some(rest[..end].to_string())
}

/// `INSERT INTO `items` VALUES (` (or `… VALUES` at a line's end) → `items`.
fn insert_target(head: &[u8], ending: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"INSERT INTO ")?;
    rest.ends_with(ending).then(|| backquoted(rest)).flatten()
}

/// The identifier a line continues with, `` `a``b` `` → ``a`b``.
fn backquoted(s: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(s.strip_prefix(b"`")?).ok()?;
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                out.push('`');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "SET x = 1;\nCOPY public.items (id, note) FROM stdin;\n1\tline\\nbreak \\\\ 🦀\n2\t\\N\n\\.\n\n\
        COPY public.\"Empty\" (id) FROM stdin;\n\\.\nCREATE VIEW v AS SELECT 1;\n";
    const MARIA: &str = "CREATE TABLE `items` (\n  `id` int\n);\nCREATE TABLE `em``pty` (`id` int);\n\
        INSERT INTO `items` VALUES (1,'a),(\\'b;',0x00FF),(2,NULL,'🦀 \\\\'),(3,'x\\ny',\"d(q\");\n\
        INSERT INTO `items` VALUES (4,'');\nINSERT INTO `items` VALUES\n(5,'x\\'),\n'),\n(6,NULL);\n\
        /*!50001 CREATE VIEW `v` AS SELECT 1 */;\n";

    fn tally(engine: EngineType, text: &str, chunk: usize) -> Manifest {
        let mut t = Tally::new(engine);
        for c in text.as_bytes().chunks(chunk) {
            t.feed(c);
        }
        t.finish()
    }

    fn rows(m: &Manifest) -> Vec<(&str, u64)> {
        m.tables.iter().map(|t| (t.table.as_str(), t.rows)).collect()
    }

    #[test]
    fn counts_copy_rows_and_insert_tuples_whatever_the_chunking() {
        let whole = tally(EngineType::Postgresql, PG, PG.len());
        assert_eq!(rows(&whole), vec![("public.\"Empty\"", 0), ("public.items", 2)]);
        let maria = tally(EngineType::Mysql, MARIA, MARIA.len());
        assert_eq!(rows(&maria), vec![("em`pty", 0), ("items", 6)]);
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(tally(EngineType::Postgresql, PG, chunk), whole, "chunk {chunk}");
            assert_eq!(tally(EngineType::Mysql, MARIA, chunk), maria, "chunk {chunk}");
        }
    }

    #[test]
    fn digests_ignore_row_order_but_see_content() {
        let a = tally(EngineType::Postgresql, "COPY public.t (a) FROM stdin;\n1\n2\n\\.\n", 5);
        let b = tally(EngineType::Postgresql, "COPY public.t (a) FROM stdin;\n2\n1\n\\.\n", 3);
        let c = tally(EngineType::Postgresql, "COPY public.t (a) FROM stdin;\n2\n3\n\\.\n", 3);
        assert_eq!(a, b);
        assert!(compare(&a, &b).passed());
        let diff = compare(&a, &c);
        assert_eq!(diff.mismatches[0].describe(), "public.t: same row count, different content");
        let short = tally(EngineType::Postgresql, "COPY public.t (a) FROM stdin;\n1\n\\.\n", 3);
        let diff = compare(&a, &short);
        assert_eq!(diff.summary(), "1 of 1 tables differ: public.t: 1 rows restored, 2 in the backup (1 missing)");
        let m1 = tally(EngineType::Mysql, "INSERT INTO `t` VALUES (1,'a'),(2,'b');\n", 4);
        let m2 = tally(EngineType::Mysql, "INSERT INTO `t` VALUES (2,'b');\nINSERT INTO `t` VALUES (1,'a');\n", 4);
        assert_eq!(m1, m2);
    }

    #[test]
    fn a_missing_table_is_named() {
        let a = tally(EngineType::Mysql, MARIA, 9);
        let b = tally(EngineType::Mysql, "CREATE TABLE `items` (`id` int);\n", 9);
        let d = compare(&a, &b);
        assert_eq!(d.mismatched_tables, 2);
        assert!(d.summary().contains("em`pty: in the backup (0 rows) but not restored"), "{}", d.summary());
    }
}
