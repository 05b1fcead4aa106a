//! Importing contacts from CSV: how a file is read (its delimiter, found from the header row
//! unless given; UTF-8 with or without a byte order mark, or Latin-1), how each row is checked
//! at the edge, and how rows that name a contact already named earlier in the same import are
//! told apart: reported by line, or merged when asked. `waymark import contacts` (in `cli`) and
//! `POST /v1/contacts/import` (in `api::manage`) both use it.

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
/// 64-bit hash of each id and address is kept (with where it was first seen), so a file of a
/// million rows needs some tens of megabytes, not the ids themselves.
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
        let user_id = contact["user_id"].as_str();
        let email = contact["email"].as_str().map(str::to_lowercase);
        // A row without a user_id is the contact whose user_id is its email (as the import
        // API takes it).
        let Some(id) = user_id.or(contact["email"].as_str()) else {
            return Ok(true);
        };
        let id = hash(("user_id", id));
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
        if let Some(e) = &email {
            let address = hash(("email", e.as_str()));
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
