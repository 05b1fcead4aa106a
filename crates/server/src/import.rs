//! Importing contacts from CSV: how a file is read (its delimiter, found from the header row
//! unless given; UTF-8 with or without a byte order mark, or Latin-1), how each row is checked
//! at the edge, and how rows that name a contact already named earlier in the same import are
//! told apart: reported by line, or merged when asked. `waymark import contacts` (in `cli`) and
//! `POST /v1/contacts/import` (in `api::manage`) both use it.
//!
//! A file of any length is imported in memory that does not grow with it: it is read twice,
//! first to find the few rows that share an id or an address with another ([`RepeatFinder`],
//! sorted runs of hashes on disk), then to send the rows, where only those few are remembered.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::Read;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use waymark_core::{Email, Phone, TimeZoneName};

/// The delimiters a header row is searched for, in the order a tie is settled.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The delimiter of a CSV file whose first bytes are `start`: the one of `,` `;` tab `|` that
/// its header row (up to the first line break outside quotes) holds most often outside quotes;
/// a comma when it holds none. Spreadsheets in much of Europe write `;`.
pub fn detect_delimiter(start: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in start {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = DELIMITERS.iter().position(|d| *d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let (best, most) =
        (counts.iter().enumerate()).fold(
            (0, 0),
            |(bi, bc), (i, &c)| if c > bc { (i, c) } else { (bi, bc) },
        );
    if most == 0 { b',' } else { DELIMITERS[best] }
}

/// Parses a `--delimiter` value: one ASCII character, or `tab`.
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" && s != "\r" => {
            Ok(s.as_bytes()[0])
        }
        _ => Err(format!(
            "`{s}` is not a delimiter: give one character, such as `,` `;` `|` or `tab`"
        )),
    }
}

/// How a file's bytes are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// ISO-8859-1 (Latin-1): every byte is the character of the same number.
    #[value(name = "latin1", alias = "latin-1", alias = "iso-8859-1")]
    Latin1,
}

/// The reader an import reads a CSV file with: a header row, then rows of the same length,
/// separated by `delimiter`. Give it [`text`] of the file's bytes. Public (with
/// [`contact_from_row`]) for the fuzz target `csv_import`.
pub fn contacts_reader<R: Read>(input: R, delimiter: u8) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(false)
        .delimiter(delimiter)
        .from_reader(input)
}

/// The file's text as UTF-8 bytes: a leading UTF-8 byte order mark dropped, Latin-1 converted.
pub fn text<R: Read + Send + 'static>(input: R, encoding: Encoding) -> Box<dyn Read + Send> {
    match encoding {
        Encoding::Utf8 => Box::new(WithoutBom {
            inner: input,
            checked: false,
            held: Vec::new(),
        }),
        Encoding::Latin1 => Box::new(Latin1 {
            inner: input,
            pending: None,
        }),
    }
}

/// Drops a UTF-8 byte order mark at the start (which would otherwise be part of the first
/// column's name).
struct WithoutBom<R> {
    inner: R,
    checked: bool,
    /// Bytes read while looking for the mark, not yet handed on.
    held: Vec<u8>,
}

impl<R: Read> Read for WithoutBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            let mut start = [0u8; 3];
            let mut got = 0;
            while got < 3 {
                match self.inner.read(&mut start[got..])? {
                    0 => break,
                    n => got += n,
                }
            }
            if start[..got] != [0xEF, 0xBB, 0xBF] {
                self.held = start[..got].to_vec();
            }
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            buf[..n].copy_from_slice(&self.held[..n]);
            self.held.drain(..n);
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// Latin-1 to UTF-8: a byte below 128 is itself, any other becomes two bytes. (A dozen lines,
/// where an encoding library would bring every other encoding along.)
struct Latin1<R> {
    inner: R,
    /// The second byte of a character that did not fit in the last buffer.
    pending: Option<u8>,
}

impl<R: Read> Read for Latin1<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut out = 0;
        if let Some(b) = self.pending.take() {
            buf[0] = b;
            out = 1;
        }
        // At most half the space left, so that every byte read fits once converted.
        let mut raw = vec![0u8; ((buf.len() - out) / 2).max(1)];
        let n = if out < buf.len() {
            self.inner.read(&mut raw)?
        } else {
            0
        };
        for &b in &raw[..n] {
            let (first, second) = if b < 0x80 {
                (b, None)
            } else {
                (0xC0 | (b >> 6), Some(0x80 | (b & 0x3F)))
            };
            buf[out] = first;
            out += 1;
            if let Some(second) = second {
                if out < buf.len() {
                    buf[out] = second;
                    out += 1;
                } else {
                    self.pending = Some(second);
                }
            }
        }
        Ok(out)
    }
}

/// A CSV row checked at the edge: `Err` carries the column and the reason.
pub fn contact_from_row(
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
) -> Result<Value, (String, String)> {
    let mut contact = Map::new();
    let mut traits = Map::new();
    for (header, cell) in headers.iter().zip(row.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let column = header.trim();
        match column {
            "user_id" => {
                contact.insert("user_id".into(), json!(cell));
            }
            "email" => {
                let e = Email::parse(cell).map_err(|e| ("email".to_string(), e.0))?;
                contact.insert("email".into(), json!(e.as_str()));
            }
            "phone" => {
                let p = Phone::parse(cell).map_err(|e| ("phone".to_string(), e.0))?;
                contact.insert("phone".into(), json!(p.as_str()));
            }
            "timezone" => {
                let t = TimeZoneName::parse(cell).map_err(|e| ("timezone".to_string(), e.0))?;
                contact.insert("timezone".into(), json!(t.as_str()));
            }
            other => {
                traits.insert(other.to_string(), json!(cell));
            }
        }
    }
    if !contact.contains_key("user_id") && !contact.contains_key("email") {
        return Err(("user_id".into(), "a row needs a user_id or an email".into()));
    }
    contact.insert("traits".into(), Value::Object(traits));
    Ok(Value::Object(contact))
}

/// What an import does with a row naming a contact an earlier row of the same import named
/// (the same `user_id`, or, for a row without one, the same email).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Reports it (with the row it repeats) and leaves it out.
    #[default]
    Reject,
    /// Applies it after the earlier row: its cells replace the earlier ones, the others stay.
    Merge,
}

/// The contacts the rows of one import named so far, to find rows that repeat one. Only a
/// 64-bit hash of each id and address is kept (with where it was first seen), but that is still
/// memory in proportion to the rows given: a request's rows, or the rows of a file that a
/// [`RepeatFinder`] found sharing an id or an address with another (and every row of a file
/// read from a pipe, which cannot be read twice).
pub struct SeenContacts {
    /// How a row's place reads in a message (`line 2`, `contacts[2]`).
    place: fn(u64) -> String,
    /// By the contact's id in the import (its `user_id`, or its email when it has none).
    ids: HashMap<u64, u64>,
    /// By email address (lower case): where it was first seen.
    emails: HashMap<u64, u64>,
}

/// Why a row was left out: it repeats the contact or the address of row `at`.
#[derive(Debug, PartialEq, Eq)]
pub struct Repeated {
    /// The column that repeats (`user_id` or `email`).
    pub column: &'static str,
    pub at: u64,
    pub message: String,
}

impl SeenContacts {
    pub fn new(place: fn(u64) -> String) -> Self {
        SeenContacts {
            place,
            ids: HashMap::new(),
            emails: HashMap::new(),
        }
    }

    /// Notes the accepted row `contact` found at `at` (a line or an index). `Ok(true)` for a
    /// contact not named before, `Ok(false)` for one to merge into an earlier row's.
    pub fn note(
        &mut self,
        at: u64,
        contact: &Value,
        on_duplicate: OnDuplicate,
    ) -> Result<bool, Repeated> {
        let identity = Identity::of(contact);
        let Some((id, address)) = identity.keys() else {
            return Ok(true);
        };
        let user_id = identity.user_id;
        let email = identity.email.map(str::to_lowercase);
        if let Some(&first) = self.ids.get(&id) {
            let place = (self.place)(first);
            return match on_duplicate {
                OnDuplicate::Merge => Ok(false),
                OnDuplicate::Reject => Err(match user_id {
                    Some(u) => Repeated {
                        column: "user_id",
                        at: first,
                        message: format!("user_id `{u}` is also on {place}"),
                    },
                    None => Repeated {
                        column: "email",
                        at: first,
                        message: format!(
                            "email `{}` (the contact's id, as it has no user_id) is also on {place}",
                            email.as_deref().unwrap_or_default()
                        ),
                    },
                }),
            };
        }
        // The row names a contact no earlier row named: an earlier row with its email named
        // another one.
        if let (Some(e), Some(address)) = (&email, address) {
            match self.emails.get(&address) {
                // Two ids with one address: people may share one, but in a single file it is
                // more often one person entered twice, so it is said unless merging was asked.
                Some(&first) if on_duplicate == OnDuplicate::Reject => {
                    return Err(Repeated {
                        column: "email",
                        at: first,
                        message: format!(
                            "email `{e}` is also on {}, for another contact (to import both, \
                             merge duplicates)",
                            (self.place)(first)
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    self.emails.insert(address, at);
                }
            }
        }
        self.ids.insert(id, at);
        Ok(true)
    }
}

/// The contact a row names, as [`SeenContacts`] tells rows apart: its `user_id` and its email
/// address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
}

impl<'a> Identity<'a> {
    /// The identity of a contact as [`contact_from_row`] or the import API builds it.
    pub fn of(contact: &'a Value) -> Self {
        Identity {
            user_id: contact["user_id"].as_str(),
            email: contact["email"].as_str(),
        }
    }

    /// The identity in a CSV row, read as [`contact_from_row`] reads it (`columns` from
    /// [`IdentityColumns::of`]); `None` for a row it refuses for its identity (no id, or an
    /// address that is not one). The parsed address is kept in `email`.
    pub fn of_row<'r>(
        columns: &IdentityColumns,
        row: &'r csv::StringRecord,
        email: &'r mut Option<Email>,
    ) -> Option<Identity<'r>> {
        let mut user_id = None;
        *email = None;
        for &(i, is_email) in &columns.0 {
            let cell = row.get(i).unwrap_or_default().trim();
            if cell.is_empty() {
                continue;
            }
            if is_email {
                *email = Some(Email::parse(cell).ok()?);
            } else {
                user_id = Some(cell);
            }
        }
        let email = email.as_ref().map(Email::as_str);
        (user_id.is_some() || email.is_some()).then_some(Identity { user_id, email })
    }

    /// The hashes a row is told apart by: its id in the import (its `user_id`, or its email
    /// when it has none) and its address (lower case). `None` for a row naming nobody.
    fn keys(&self) -> Option<(u64, Option<u64>)> {
        // A row without a user_id is the contact whose user_id is its email (as the import
        // API takes it).
        let id = hash(("user_id", self.user_id.or(self.email)?));
        let email = self.email.map(|e| {
            if e.chars().any(char::is_uppercase) {
                hash(("email", e.to_lowercase().as_str()))
            } else {
                hash(("email", e))
            }
        });
        Some((id, email))
    }
}

/// Where a header row's `user_id` and `email` columns are (`true`: an email column), in order,
/// as [`contact_from_row`] reads them: the last non-empty cell of a name wins.
pub struct IdentityColumns(Vec<(usize, bool)>);

impl IdentityColumns {
    pub fn of(headers: &csv::StringRecord) -> Self {
        IdentityColumns(
            (headers.iter().enumerate())
                .filter_map(|(i, h)| match h.trim() {
                    "user_id" => Some((i, false)),
                    "email" => Some((i, true)),
                    _ => None,
                })
                .collect(),
        )
    }
}

/// Finds the rows of a file that share a contact id or an address with another of its rows,
/// in memory flat in the file's size: each row's hashes go into a buffer of
/// [`RepeatFinder::RUN`] entries, sorted and written to a scratch file whenever it is full;
/// [`RepeatFinder::finish`] merges the sorted runs and keeps the lines of the hashes found
/// more than once. Only those rows (usually none) are then given to [`SeenContacts`]: every
/// other row names a contact and an address that no other row names, so it is new and cannot
/// make a later row a repeat.
pub struct RepeatFinder {
    /// Hashes and lines not written out yet.
    buffer: Vec<(u64, u64)>,
    /// The sorted runs written so far, once the buffer was first full.
    spilled: Option<Spilled>,
    /// [`RepeatFinder::RUN`] and [`RepeatFinder::FAN_IN`], smaller in tests.
    run: usize,
    fan_in: usize,
}

/// Sorted runs of (hash, line) entries in a scratch file, removed when dropped.
struct Spilled {
    file: tempfile::NamedTempFile,
    runs: Vec<Run>,
    /// Entries in the file.
    entries: u64,
}

/// A sorted run: where it starts in its file and how long it is, in entries.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u64,
    len: u64,
}

/// Bytes of one entry on disk: the hash, then the line, little-endian.
const ENTRY: u64 = 16;

impl Spilled {
    fn new() -> std::io::Result<Self> {
        Ok(Spilled {
            file: tempfile::NamedTempFile::new()?,
            runs: Vec::new(),
            entries: 0,
        })
    }

    /// Appends a sorted run.
    fn write_run(&mut self, entries: impl Iterator<Item = (u64, u64)>) -> std::io::Result<()> {
        let start = self.entries;
        self.append(entries)?;
        self.runs.push(Run {
            start,
            len: self.entries - start,
        });
        Ok(())
    }

    /// Appends entries, to the run being written.
    fn append(&mut self, entries: impl Iterator<Item = (u64, u64)>) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, self.file.as_file_mut());
        for (hash, line) in entries {
            out.write_all(&hash.to_le_bytes())?;
            out.write_all(&line.to_le_bytes())?;
            self.entries += 1;
        }
        out.flush()
    }

    /// Merges `runs` of this file, handing each entry to `out` in order.
    fn merge(
        &self,
        runs: &[Run],
        mut out: impl FnMut(u64, u64) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        use std::io::{BufReader, Read, Seek, SeekFrom};
        let mut readers = Vec::with_capacity(runs.len());
        for run in runs {
            let mut file = self.file.reopen()?;
            file.seek(SeekFrom::Start(run.start * ENTRY))?;
            readers.push(BufReader::with_capacity(
                32 * 1024,
                file.take(run.len * ENTRY),
            ));
        }
        let next = |r: &mut BufReader<std::io::Take<std::fs::File>>| -> std::io::Result<_> {
            let mut entry = [0u8; ENTRY as usize];
            match r.read_exact(&mut entry) {
                Ok(()) => {
                    let (hash, line) = entry.split_at(8);
                    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
                    Ok(Some((word(hash), word(line))))
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut heap = std::collections::BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some((hash, line)) = next(r)? {
                heap.push(std::cmp::Reverse((hash, line, i)));
            }
        }
        while let Some(std::cmp::Reverse((hash, line, i))) = heap.pop() {
            out(hash, line)?;
            if let Some((hash, line)) = next(&mut readers[i])? {
                heap.push(std::cmp::Reverse((hash, line, i)));
            }
        }
        Ok(())
    }
}

/// The rows of a file that share a contact id or an address with another of its rows.
#[derive(Debug, Default)]
pub struct Repeats {
    lines: std::collections::HashSet<u64>,
    /// The hash being read and its lines so far, while merging.
    current: Option<u64>,
    group: Vec<u64>,
}

impl Repeats {
    /// Whether the row at `line` shares a contact id or an address with another row (so
    /// [`SeenContacts`] must judge it).
    pub fn contains(&self, line: u64) -> bool {
        self.lines.contains(&line)
    }

    /// Takes the entries in hash order.
    fn take(&mut self, hash: u64, line: u64) {
        if self.current != Some(hash) {
            self.close_group();
            self.current = Some(hash);
        }
        self.group.push(line);
    }

    fn close_group(&mut self) {
        if self.group.len() > 1 {
            self.lines.extend(self.group.iter().copied());
        }
        self.group.clear();
    }
}

impl Default for RepeatFinder {
    fn default() -> Self {
        Self::new()
    }
}

impl RepeatFinder {
    /// Entries held in memory before they are sorted and written out (2 MiB).
    const RUN: usize = 2 * 1024 * 1024 / ENTRY as usize;
    /// Runs merged at once (with a 32 KiB read buffer each): more are first merged into
    /// longer runs, so that memory stays flat however long the file.
    const FAN_IN: usize = 64;

    pub fn new() -> Self {
        Self::with_sizes(Self::RUN, Self::FAN_IN)
    }

    fn with_sizes(run: usize, fan_in: usize) -> Self {
        RepeatFinder {
            buffer: Vec::new(),
            spilled: None,
            run,
            fan_in: fan_in.max(2),
        }
    }

    /// Notes the row at `line` naming `identity`. A row that is refused for another reason
    /// may be noted too: that only makes more lines ones to judge.
    pub fn add(&mut self, line: u64, identity: Identity<'_>) -> std::io::Result<()> {
        let Some((id, email)) = identity.keys() else {
            return Ok(());
        };
        self.buffer.push((id, line));
        if let Some(email) = email {
            self.buffer.push((email, line));
        }
        if self.buffer.len() >= self.run {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> std::io::Result<()> {
        self.buffer.sort_unstable();
        let spilled = match &mut self.spilled {
            Some(s) => s,
            None => self.spilled.insert(Spilled::new()?),
        };
        spilled.write_run(self.buffer.drain(..))
    }

    /// The lines of the rows that share a hash with another row.
    pub fn finish(mut self) -> std::io::Result<Repeats> {
        let mut repeats = Repeats::default();
        if self.spilled.is_none() {
            self.buffer.sort_unstable();
            for &(hash, line) in &self.buffer {
                repeats.take(hash, line);
            }
        } else {
            if !self.buffer.is_empty() {
                self.spill()?;
            }
            self.buffer = Vec::new();
            let mut spilled = self.spilled.take().expect("spilled");
            let run = self.run;
            while spilled.runs.len() > self.fan_in {
                let mut longer = Spilled::new()?;
                for runs in spilled.runs.chunks(self.fan_in) {
                    let start = longer.entries;
                    // Written a buffer's worth at a time, so that memory stays one buffer.
                    let mut pending = Vec::with_capacity(run);
                    spilled.merge(runs, |hash, line| {
                        pending.push((hash, line));
                        if pending.len() == run {
                            longer.append(pending.drain(..))?;
                        }
                        Ok(())
                    })?;
                    longer.append(pending.drain(..))?;
                    longer.runs.push(Run {
                        start,
                        len: longer.entries - start,
                    });
                }
                spilled = longer;
            }
            spilled.merge(&spilled.runs, |hash, line| {
                repeats.take(hash, line);
                Ok(())
            })?;
        }
        repeats.close_group();
        repeats.group = Vec::new();
        Ok(repeats)
    }
}

fn hash(value: impl std::hash::Hash) -> u64 {
    // A fixed key: the same id always hashes alike within an import.
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_one_the_header_row_holds_most_outside_quotes() {
        assert_eq!(detect_delimiter(b"user_id,email\n1,a@b.c"), b',');
        assert_eq!(detect_delimiter(b"user_id;email;name\n1;a@b.c;x,y"), b';');
        assert_eq!(detect_delimiter(b"user_id\temail\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"a;b\",c\n"), b',', "inside quotes");
        assert_eq!(detect_delimiter(b"email\n"), b',', "a single column");
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert!(parse_delimiter(";;").is_err());
    }

    fn read_all(r: impl Read + Send + 'static, encoding: Encoding) -> String {
        let mut out = String::new();
        text(r, encoding).read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_latin1_becomes_utf8() {
        let bom = b"\xEF\xBB\xBFuser_id\n1\n".to_vec();
        assert_eq!(
            read_all(std::io::Cursor::new(bom), Encoding::Utf8),
            "user_id\n1\n"
        );
        let short = b"ab".to_vec();
        assert_eq!(read_all(std::io::Cursor::new(short), Encoding::Utf8), "ab");
        let latin1 = b"name\nJos\xE9 M\xFCller \xA9\n".to_vec();
        assert_eq!(
            read_all(std::io::Cursor::new(latin1), Encoding::Latin1),
            "name\nJosé Müller ©\n"
        );
        // One byte at a time: a two-byte character split across reads.
        let mut r = text(std::io::Cursor::new(b"\xE9\xE9".to_vec()), Encoding::Latin1);
        let mut got = Vec::new();
        let mut one = [0u8; 1];
        while r.read(&mut one).unwrap() == 1 {
            got.push(one[0]);
        }
        assert_eq!(String::from_utf8(got).unwrap(), "éé");
    }

    /// Rows naming a few ids and addresses, many of them repeated, some without an id.
    fn rows(n: u64, seed: u64) -> Vec<(u64, Value)> {
        let mut state = seed;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        (0..n)
            .map(|i| {
                let user = next(n);
                let address = next(n);
                let contact = match next(4) {
                    0 => json!({"email": format!("p{address}@x.io")}),
                    1 => json!({"user_id": format!("u{user}")}),
                    2 => {
                        json!({"user_id": format!("u{user}"), "email": format!("P{address}@x.io")})
                    }
                    _ => {
                        json!({"user_id": format!("u{user}"), "email": format!("p{address}@x.io")})
                    }
                };
                (i + 2, contact)
            })
            .collect()
    }

    #[test]
    fn judging_only_the_rows_a_repeat_finder_flags_gives_what_judging_every_row_gives() {
        let line = |n| format!("line {n}");
        // In memory, spilled to one merge, and spilled to merges of merges.
        for (n, run, fan_in) in [
            (300, 10_000, 64),
            (300, 16, 64),
            (3000, 16, 3),
            (2000, 7, 2),
        ] {
            for seed in 0..4 {
                let rows = rows(n, seed);
                let mut finder = RepeatFinder::with_sizes(run, fan_in);
                for (at, contact) in &rows {
                    finder.add(*at, Identity::of(contact)).unwrap();
                }
                let repeats = finder.finish().unwrap();
                assert!(repeats.lines.len() < rows.len(), "some rows are unique");
                for on_duplicate in [OnDuplicate::Reject, OnDuplicate::Merge] {
                    let (mut all, mut flagged) = (SeenContacts::new(line), SeenContacts::new(line));
                    for (at, contact) in &rows {
                        let expected = all.note(*at, contact, on_duplicate);
                        let got = if repeats.contains(*at) {
                            flagged.note(*at, contact, on_duplicate)
                        } else {
                            Ok(true)
                        };
                        assert_eq!(
                            got, expected,
                            "line {at} ({n} rows, run {run}, seed {seed})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_is_read_for_its_identity_as_contact_from_row_reads_it() {
        let headers = csv::StringRecord::from(vec!["email", " user_id ", "plan", "email"]);
        let columns = IdentityColumns::of(&headers);
        let mut email = None;
        let row = csv::StringRecord::from(vec!["a@x.io", " u1 ", "pro", " B@X.io "]);
        let identity = Identity::of_row(&columns, &row, &mut email).unwrap();
        let contact = contact_from_row(&headers, &row).unwrap();
        assert_eq!(identity.keys(), Identity::of(&contact).keys());
        assert_eq!(identity.email, Some("b@x.io"));
        let row = csv::StringRecord::from(vec!["", "", "pro", ""]);
        assert!(Identity::of_row(&columns, &row, &mut email).is_none());
        let row = csv::StringRecord::from(vec!["not an address", "u1", "", ""]);
        assert!(Identity::of_row(&columns, &row, &mut email).is_none());
        assert!(contact_from_row(&headers, &row).is_err());
    }

    #[test]
    fn a_repeated_contact_is_reported_with_where_it_was_first_or_merged_when_asked() {
        let row = |v: Value| v;
        let line = |n| format!("line {n}");
        let mut seen = SeenContacts::new(line);
        let reject = OnDuplicate::Reject;
        assert_eq!(
            seen.note(2, &row(json!({"user_id": "u1", "email": "a@x.io"})), reject),
            Ok(true)
        );
        let again = seen.note(
            608,
            &row(json!({"user_id": "u1", "email": "b@x.io"})),
            reject,
        );
        assert_eq!(again.unwrap_err().message, "user_id `u1` is also on line 2");
        let shared = seen.note(9, &row(json!({"user_id": "u2", "email": "A@x.io"})), reject);
        assert_eq!(shared.as_ref().unwrap_err().column, "email");
        assert_eq!(
            seen.note(10, &row(json!({"email": "c@x.io"})), reject),
            Ok(true)
        );
        let by_email = seen.note(11, &row(json!({"email": "c@x.io"})), reject);
        assert_eq!(by_email.unwrap_err().at, 10);
        let other_case = seen.note(12, &row(json!({"email": "C@x.io"})), reject);
        assert_eq!(
            other_case.unwrap_err().column,
            "email",
            "another id, the same address"
        );

        let mut merging = SeenContacts::new(line);
        let merge = OnDuplicate::Merge;
        assert_eq!(
            merging.note(2, &row(json!({"user_id": "u1"})), merge),
            Ok(true)
        );
        assert_eq!(
            merging.note(3, &row(json!({"user_id": "u1"})), merge),
            Ok(false)
        );
        assert_eq!(
            merging.note(4, &row(json!({"user_id": "u2", "email": "a@x.io"})), merge),
            Ok(true)
        );
        assert_eq!(
            merging.note(5, &row(json!({"user_id": "u3", "email": "a@x.io"})), merge),
            Ok(true)
        );
    }
}
