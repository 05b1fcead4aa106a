//! The text form: a hand-written lexer and recursive-descent parser, and the printer.
//!
//! ```text
//! condition  = or
//! or         = and { "or" and }
//! and        = unary { "and" unary }
//! unary      = "not" unary | "(" or ")" | atom
//! ```
//! The full grammar, with every atom, is in `docs/conditions.md`. Keywords are
//! case-insensitive; trait paths are case-sensitive and are written in backticks when they are
//! not plain identifiers or when their first part is a keyword.
//!
//! The printer writes [`Condition::canonical`], so `parse(&print(c)) == c.canonical()`.

use std::fmt;

use serde_json::{Number, Value};

use super::dates::is_date_literal;
use super::{
    AggregateCondition, AggregateFunction, Channel, CompareOp, Condition, Engagement,
    EngagementCondition, EntryEventCondition, EntryMessageCondition, HistoryCondition, Times,
};
use crate::duration::Duration;
use crate::filter::{Filter, Ops, Predicate};
use crate::limits::{MAX_CONDITION_DEPTH, MAX_VALUE_DEPTH};

/// Words that start a construct; a trait path whose first part is one of them is written in
/// backticks.
const RESERVED: &[&str] = &[
    "and",
    "trigger",
    "or",
    "not",
    "no",
    "did",
    "in",
    "sum",
    "min",
    "max",
    "avg",
    "opened",
    "clicked",
    "sent",
    "delivered",
    "event",
    "message",
    "all",
    "any",
    "true",
    "false",
    "null",
];

/// A syntax error: where it is and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}{}", found_suffix(.found))]
pub struct ParseError {
    /// Byte offset into the source.
    pub offset: usize,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What went wrong, usually "expected …".
    pub message: String,
    /// The text found there (empty at the end of the input).
    pub found: String,
}

fn found_suffix(found: &str) -> String {
    if found.is_empty() {
        " (found the end of the condition)".to_string()
    } else {
        format!(" (found `{found}`)")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or dotted path; keywords are words too.
    Word(String),
    /// A path in backticks.
    Path(String),
    Str(String),
    Num(String),
    Dur(String),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn error_at(src: &str, offset: usize, end: usize, message: impl Into<String>) -> ParseError {
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = src[line_start..offset].chars().count() + 1;
    ParseError {
        offset,
        line,
        column,
        message: message.into(),
        found: src[offset..end].chars().take(40).collect(),
    }
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let char_at = |i: usize| src[i..].chars().next();
    while i < src.len() {
        let c = char_at(i).unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '[' => {
                i += 1;
                Tok::LBrack
            }
            ']' => {
                i += 1;
                Tok::RBrack
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '=' => {
                i += 1;
                Tok::Eq
            }
            '!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Ne
            }
            '>' | '<' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                i += if eq { 2 } else { 1 };
                match (c, eq) {
                    ('>', false) => Tok::Gt,
                    ('>', true) => Tok::Ge,
                    ('<', false) => Tok::Lt,
                    _ => Tok::Le,
                }
            }
            '"' => {
                let mut j = i + 1;
                loop {
                    match bytes.get(j) {
                        None => {
                            return Err(error_at(
                                src,
                                start,
                                src.len(),
                                "expected a closing `\"` for this string",
                            ));
                        }
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                let raw = src.get(i..=j).unwrap_or_default();
                i = j + 1;
                let s: String = serde_json::from_str(raw).map_err(|_| {
                    error_at(
                        src,
                        start,
                        i,
                        "expected a string with valid escapes (\\\" \\\\ \\n \\t \\uXXXX)",
                    )
                })?;
                Tok::Str(s)
            }
            '`' => {
                let mut j = i + 1;
                let mut path = String::new();
                loop {
                    match char_at(j) {
                        None => {
                            return Err(error_at(
                                src,
                                start,
                                src.len(),
                                "expected a closing ` for this path",
                            ));
                        }
                        Some('\\') => match char_at(j + 1) {
                            Some(e @ ('`' | '\\')) => {
                                path.push(e);
                                j += 2;
                            }
                            _ => {
                                return Err(error_at(
                                    src,
                                    j,
                                    j + 1,
                                    "expected \\` or \\\\ after a backslash in a path",
                                ));
                            }
                        },
                        Some('`') => break,
                        Some(ch) => {
                            path.push(ch);
                            j += ch.len_utf8();
                        }
                    }
                }
                i = j + 1;
                Tok::Path(path)
            }
            c if c.is_ascii_digit()
                || (c == '-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let mut j = i + 1;
                while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                let mut fraction = false;
                if bytes.get(j) == Some(&b'.') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit) {
                    fraction = true;
                    j += 1;
                    while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                    }
                }
                if !fraction && bytes.get(j).is_some_and(u8::is_ascii_alphabetic) {
                    while bytes.get(j).is_some_and(u8::is_ascii_alphanumeric) {
                        j += 1;
                    }
                    i = j;
                    Tok::Dur(src[start..j].to_string())
                } else {
                    i = j;
                    Tok::Num(src[start..j].to_string())
                }
            }
            c if is_word_start(c) => {
                let mut j = i;
                loop {
                    while let Some(ch) = char_at(j).filter(|ch| is_word_char(*ch)) {
                        j += ch.len_utf8();
                    }
                    if char_at(j) == Some('.') && char_at(j + 1).is_some_and(is_word_char) {
                        j += 1;
                        continue;
                    }
                    break;
                }
                i = j;
                Tok::Word(src[start..j].to_string())
            }
            _ => {
                return Err(error_at(
                    src,
                    start,
                    start + c.len_utf8(),
                    "expected a condition, a value or an operator",
                ));
            }
        };
        tokens.push(Token { tok, start, end: i });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(tokens)
}

/// Parses the text form.
pub fn parse(src: &str) -> Result<Condition, ParseError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
        list_depth: 0,
    };
    let c = p.or()?;
    if p.peek().tok != Tok::Eof {
        return Err(p.error("expected `and`, `or` or the end of the condition"));
    }
    Ok(c)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// Groups, parentheses and `not`s open at this point (see [`MAX_CONDITION_DEPTH`]).
    depth: usize,
    /// Lists open at this point (see [`MAX_VALUE_DEPTH`]).
    list_depth: usize,
}

type PResult<T> = Result<T, ParseError>;

const EXPECT_DURATION: &str = "expected a duration such as 30d";
const EXPECT_COMPARISON: &str = "expected a comparison: =, !=, >, >=, <, <=, contains, exists, \
    not exists, in [...], within last, within next, older than, anniversary today, before, after or near";

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }
    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].tok
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn error(&self, message: impl Into<String>) -> ParseError {
        let t = self.peek();
        error_at(self.src, t.start, t.end, message)
    }
    fn is_kw_at(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.peek_at(ahead), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.bump();
        }
        yes
    }
    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{kw}`")))
        }
    }
    fn expect(&mut self, tok: Tok, what: &str) -> PResult<()> {
        if self.peek().tok == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }
    fn string(&mut self, what: &str) -> PResult<String> {
        match &self.peek().tok {
            Tok::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }
    fn duration(&mut self) -> PResult<String> {
        match &self.peek().tok {
            Tok::Dur(raw) | Tok::Num(raw) if Duration::parse(raw).is_ok() => {
                let raw = raw.clone();
                self.bump();
                Ok(raw)
            }
            _ => Err(self.error(EXPECT_DURATION)),
        }
    }
    fn whole_number(&mut self, what: &str) -> PResult<u32> {
        match &self.peek().tok {
            Tok::Num(raw) => match raw.parse::<u32>() {
                Ok(n) => {
                    self.bump();
                    Ok(n)
                }
                Err(_) => Err(self.error(format!("expected {what}"))),
            },
            _ => Err(self.error(format!("expected {what}"))),
        }
    }
    fn number(&mut self) -> PResult<f64> {
        match &self.peek().tok {
            Tok::Num(raw) => match raw.parse::<f64>() {
                Ok(n) if n.is_finite() => {
                    self.bump();
                    Ok(n)
                }
                _ => Err(self.error("expected a number")),
            },
            _ => Err(self.error("expected a number")),
        }
    }

    fn or(&mut self) -> PResult<Condition> {
        let mut items = vec![self.and()?];
        while self.eat_kw("or") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Condition::Any(items)
        })
    }

    fn and(&mut self) -> PResult<Condition> {
        let mut items = vec![self.unary()?];
        while self.eat_kw("and") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Condition::All(items)
        })
    }

    fn unary(&mut self) -> PResult<Condition> {
        if self.is_kw("not") {
            return self.nested(|p| {
                p.bump();
                // `not (…)` is one level, as the printer writes a negated comparison, so that
                // what prints at the limit parses back.
                if p.peek().tok == Tok::LParen {
                    p.bump();
                    let c = p.or()?;
                    p.expect(Tok::RParen, "`)`")?;
                    return Ok(Condition::Not(Box::new(c)));
                }
                Ok(Condition::Not(Box::new(p.unary()?)))
            });
        }
        if self.peek().tok == Tok::LParen {
            return self.nested(|p| {
                p.bump();
                let c = p.or()?;
                p.expect(Tok::RParen, "`)`")?;
                Ok(c)
            });
        }
        self.atom()
    }

    /// Parses one level of nesting, refusing to go deeper than [`MAX_CONDITION_DEPTH`] (which
    /// also keeps the recursion of this parser bounded).
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> PResult<Condition>) -> PResult<Condition> {
        if self.depth >= MAX_CONDITION_DEPTH {
            return Err(self.error(format!(
                "conditions nest at most {MAX_CONDITION_DEPTH} levels deep (parentheses, \
                 `all(…)`/`any(…)` and `not`)"
            )));
        }
        self.depth += 1;
        let c = f(self);
        self.depth -= 1;
        c
    }

    fn atom(&mut self) -> PResult<Condition> {
        let word = match &self.peek().tok {
            Tok::Word(w) => w.to_ascii_lowercase(),
            Tok::Path(_) => String::new(),
            _ => return Err(self.error("expected a condition")),
        };
        let call = *self.peek_at(1) == Tok::LParen;
        match word.as_str() {
            "did" => self.history(),
            "sum" | "min" | "max" | "avg" if call => self.aggregate(),
            "all" | "any" if call => self.group(),
            "in" => {
                self.bump();
                self.expect_kw("list")?;
                Ok(Condition::InList(
                    self.string("a list name in double quotes, such as \"vip\"")?,
                ))
            }
            "opened" | "clicked" | "sent" | "delivered" => self.engaged(),
            "event" | "no" => self.entry_event(),
            "message" => self.entry_message(),
            "trigger" => {
                self.bump();
                Ok(Condition::Trigger(self.where_filter()?))
            }
            "and" | "or" | "not" | "true" | "false" | "null" => {
                Err(self.error("expected a condition"))
            }
            _ => {
                let path = self.path()?;
                let predicate = self.comparison()?;
                Ok(Condition::Traits(Filter::from([(path, predicate)])))
            }
        }
    }

    fn path(&mut self) -> PResult<String> {
        match &self.peek().tok {
            Tok::Word(w) | Tok::Path(w) => {
                let w = w.clone();
                self.bump();
                Ok(w)
            }
            _ => Err(self.error("expected a property name")),
        }
    }

    fn engagement(&mut self) -> PResult<Engagement> {
        for e in Engagement::ALL {
            if self.eat_kw(e.as_str()) {
                return Ok(e);
            }
        }
        Err(self.error("expected `sent`, `delivered`, `opened` or `clicked`"))
    }

    fn group(&mut self) -> PResult<Condition> {
        self.nested(Self::group_items)
    }

    fn group_items(&mut self) -> PResult<Condition> {
        let all = self.is_kw("all");
        self.bump();
        self.expect(Tok::LParen, "`(`")?;
        let mut items = Vec::new();
        if self.peek().tok != Tok::RParen {
            items.push(self.or()?);
            while self.peek().tok == Tok::Comma {
                self.bump();
                items.push(self.or()?);
            }
        }
        self.expect(Tok::RParen, "`,` or `)`")?;
        Ok(if all {
            Condition::All(items)
        } else {
            Condition::Any(items)
        })
    }

    /// `in last D` / `in the last D`, after `in` was seen followed by `last` or `the`.
    fn window_after_in(&mut self) -> PResult<String> {
        self.expect_kw("in")?;
        self.eat_kw("the");
        self.expect_kw("last")?;
        self.duration()
    }

    fn at_window(&self) -> bool {
        self.is_kw("in") && (self.is_kw_at(1, "last") || self.is_kw_at(1, "the"))
    }

    fn history(&mut self) -> PResult<Condition> {
        self.bump();
        let negated = self.eat_kw("not");
        let event = self.string("the event name in double quotes, such as \"Order Completed\"")?;
        let (mut times, mut within, mut filter) = (None, None, None);
        loop {
            if times.is_none() && (self.is_kw("at") || self.is_kw("exactly")) {
                times = Some(self.times()?);
            } else if within.is_none() && self.at_window() {
                within = Some(self.window_after_in()?);
            } else if filter.is_none() && self.is_kw("where") {
                filter = Some(self.where_filter()?);
            } else {
                break;
            }
        }
        let c = Condition::Did(HistoryCondition {
            event,
            times: times.unwrap_or_default(),
            within,
            filter: filter.unwrap_or_default(),
        });
        Ok(if negated {
            Condition::Not(Box::new(c))
        } else {
            c
        })
    }

    fn times(&mut self) -> PResult<Times> {
        let make: fn(u32) -> Times = if self.eat_kw("exactly") {
            Times::Eq
        } else {
            self.expect_kw("at")?;
            if self.eat_kw("least") {
                Times::Gte
            } else if self.eat_kw("most") {
                Times::Lte
            } else {
                return Err(self.error("expected `least` or `most`"));
            }
        };
        let n = self.whole_number("a whole number of times, such as 2")?;
        if !(self.eat_kw("times") || self.eat_kw("time")) {
            return Err(self.error("expected `times`"));
        }
        Ok(make(n))
    }

    fn aggregate(&mut self) -> PResult<Condition> {
        let name = match &self.bump().tok {
            Tok::Word(w) => w.to_ascii_lowercase(),
            _ => String::new(),
        };
        let function = AggregateFunction::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .unwrap_or(AggregateFunction::Sum);
        self.expect(Tok::LParen, "`(`")?;
        let property = self.path()?;
        self.expect(Tok::RParen, "`)`")?;
        self.expect_kw("of")?;
        let event = self.string("the event name in double quotes, such as \"Order Completed\"")?;
        let (mut within, mut filter) = (None, None);
        loop {
            if within.is_none() && self.at_window() {
                within = Some(self.window_after_in()?);
            } else if filter.is_none() && self.is_kw("where") {
                filter = Some(self.where_filter()?);
            } else {
                break;
            }
        }
        let op = match self.peek().tok {
            Tok::Gt => CompareOp::Gt,
            Tok::Ge => CompareOp::Gte,
            Tok::Lt => CompareOp::Lt,
            Tok::Le => CompareOp::Lte,
            Tok::Eq => CompareOp::Eq,
            Tok::Ne => CompareOp::Ne,
            _ => {
                return Err(self.error(
                    "expected `in last`, `where` or a comparison (=, !=, >, >=, <, <=) and a number",
                ));
            }
        };
        self.bump();
        let value = self.number()?;
        Ok(Condition::Aggregate(AggregateCondition {
            function,
            property,
            event,
            within,
            filter: filter.unwrap_or_default(),
            op,
            value,
        }))
    }

    fn engaged(&mut self) -> PResult<Condition> {
        let engagement = self.engagement()?;
        self.eat_kw("any");
        let channel = if self.eat_kw("email") {
            Some(Channel::Email)
        } else if self.eat_kw("sms") {
            Some(Channel::Sms)
        } else if self.eat_kw("message") {
            None
        } else {
            return Err(self.error("expected `email`, `sms` or `message`"));
        };
        let (mut journey, mut template, mut within) = (None, None, None);
        loop {
            if journey.is_none() && self.is_kw("from") {
                self.bump();
                self.expect_kw("journey")?;
                journey = Some(self.string("a journey id in double quotes")?);
            } else if template.is_none() && self.is_kw("with") {
                self.bump();
                self.expect_kw("template")?;
                template = Some(self.string("a template id in double quotes")?);
            } else if within.is_none() && self.at_window() {
                within = Some(self.window_after_in()?);
            } else {
                break;
            }
        }
        Ok(Condition::Engaged(EngagementCondition {
            engagement,
            channel,
            journey,
            template,
            within,
        }))
    }

    fn entry_event(&mut self) -> PResult<Condition> {
        let performed = !self.eat_kw("no");
        self.expect_kw("event")?;
        let name = self.string("the event name in double quotes, such as \"Product Viewed\"")?;
        self.expect_kw("since")?;
        self.expect_kw("entry")?;
        let (mut match_key, mut filter) = (false, None);
        loop {
            if !match_key && self.is_kw("matching") {
                self.bump();
                self.expect_kw("key")?;
                match_key = true;
            } else if filter.is_none() && self.is_kw("where") {
                filter = Some(self.where_filter()?);
            } else {
                break;
            }
        }
        Ok(Condition::Event(EntryEventCondition {
            name,
            filter: filter.unwrap_or_default(),
            performed,
            match_key,
        }))
    }

    fn entry_message(&mut self) -> PResult<Condition> {
        self.bump();
        let node = match &self.peek().tok {
            Tok::Word(w) | Tok::Str(w) => w.clone(),
            _ => return Err(self.error("expected a node id, such as send_1 or \"send-1\"")),
        };
        self.bump();
        let engagement = self.engagement()?;
        Ok(Condition::Message(EntryMessageCondition {
            node,
            engagement,
        }))
    }

    /// `where comparison` or `where (comparison and comparison …)`.
    fn where_filter(&mut self) -> PResult<Filter> {
        self.expect_kw("where")?;
        let mut filter = Filter::new();
        let grouped = self.peek().tok == Tok::LParen;
        if grouped {
            self.bump();
        }
        loop {
            let at = self.peek().clone();
            let path = self.path()?;
            let predicate = self.comparison()?;
            merge_into(&mut filter, path, predicate)
                .map_err(|message| error_at(self.src, at.start, at.end, message))?;
            if !(grouped && self.eat_kw("and")) {
                break;
            }
        }
        if grouped {
            self.expect(Tok::RParen, "`and` or `)`")?;
        }
        Ok(filter)
    }

    fn literal(&mut self) -> PResult<Value> {
        let value = match &self.peek().tok {
            Tok::Str(s) => Value::String(s.clone()),
            Tok::Num(raw) => number_value(raw).ok_or_else(|| self.error("expected a number"))?,
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Value::Null,
            Tok::LBrack => return self.list().map(Value::Array),
            _ => {
                return Err(self.error(
                    "expected a value: a \"string\", a number, true, false, null or a [list]",
                ));
            }
        };
        self.bump();
        Ok(value)
    }

    fn list(&mut self) -> PResult<Vec<Value>> {
        self.list_depth += 1;
        let items = self.list_items();
        self.list_depth -= 1;
        items
    }

    fn list_items(&mut self) -> PResult<Vec<Value>> {
        if self.list_depth > MAX_VALUE_DEPTH {
            return Err(self.error(format!(
                "lists in a condition nest at most {MAX_VALUE_DEPTH} levels deep"
            )));
        }
        self.expect(Tok::LBrack, "`[`")?;
        let mut items = Vec::new();
        if self.peek().tok != Tok::RBrack {
            items.push(self.literal()?);
            while self.peek().tok == Tok::Comma {
                self.bump();
                items.push(self.literal()?);
            }
        }
        self.expect(Tok::RBrack, "`,` or `]`")?;
        Ok(items)
    }

    fn comparison(&mut self) -> PResult<Predicate> {
        let mut ops = Ops::default();
        match self.peek().tok.clone() {
            Tok::Eq => {
                self.bump();
                return Ok(Predicate::Equals(self.literal()?));
            }
            Tok::Ne => {
                self.bump();
                ops.ne = Some(self.literal()?);
            }
            t @ (Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le) => {
                self.bump();
                let n = Some(self.number()?);
                match t {
                    Tok::Gt => ops.gt = n,
                    Tok::Ge => ops.gte = n,
                    Tok::Lt => ops.lt = n,
                    _ => ops.lte = n,
                }
            }
            Tok::Word(w) => match w.to_ascii_lowercase().as_str() {
                "contains" => {
                    self.bump();
                    ops.contains = Some(self.literal()?);
                }
                "exists" => {
                    self.bump();
                    ops.exists = Some(true);
                }
                "not" => {
                    self.bump();
                    if !self.eat_kw("exists") {
                        return Err(self.error(
                            "expected `exists` (to negate another comparison write `not (…)`)",
                        ));
                    }
                    ops.exists = Some(false);
                }
                "in" => {
                    self.bump();
                    ops.one_of = Some(self.list()?);
                }
                "within" => {
                    self.bump();
                    self.eat_kw("the");
                    if self.eat_kw("last") {
                        ops.within_last = Some(self.duration()?);
                    } else if self.eat_kw("next") {
                        ops.within_next = Some(self.duration()?);
                    } else {
                        return Err(self.error("expected `last` or `next`"));
                    }
                }
                "older" => {
                    self.bump();
                    self.expect_kw("than")?;
                    ops.older_than = Some(self.duration()?);
                }
                "anniversary" => {
                    self.bump();
                    self.expect_kw("today")?;
                    ops.anniversary = Some("today".into());
                }
                "near" => {
                    // `near 45.46, 9.19 within 10 km`
                    self.bump();
                    let lat = self.number()?;
                    self.expect(Tok::Comma, "`,` between latitude and longitude")?;
                    let lon = self.number()?;
                    self.expect_kw("within")?;
                    let km = self.number()?;
                    self.expect_kw("km")?;
                    if !(-90.0..=90.0).contains(&lat)
                        || !(-180.0..=180.0).contains(&lon)
                        || km < 0.0
                    {
                        return Err(self.error(
                            "a latitude is -90 to 90, a longitude -180 to 180, a distance at least 0",
                        ));
                    }
                    ops.near = Some(crate::filter::Near { lat, lon, km });
                }
                "before" | "after" => {
                    self.bump();
                    let date = match &self.peek().tok {
                        Tok::Str(s) if is_date_literal(s) => s.clone(),
                        _ => {
                            return Err(self.error(
                                "expected a date in double quotes, such as \"2026-01-31\" or \
                                 \"2026-01-31T09:00:00Z\"",
                            ));
                        }
                    };
                    self.bump();
                    if w.eq_ignore_ascii_case("before") {
                        ops.before = Some(date);
                    } else {
                        ops.after = Some(date);
                    }
                }
                _ => return Err(self.error(EXPECT_COMPARISON)),
            },
            _ => return Err(self.error(EXPECT_COMPARISON)),
        }
        Ok(Predicate::Ops(ops))
    }
}

fn number_value(raw: &str) -> Option<Value> {
    if raw.contains('.') {
        let f: f64 = raw.parse().ok()?;
        return Number::from_f64(f).map(Value::Number);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = raw.parse::<u64>() {
        return Some(Value::from(u));
    }
    let f: f64 = raw.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// Adds one comparison to an event filter: several comparisons of one path share its operator
/// object; the same operator twice is an error.
fn merge_into(filter: &mut Filter, path: String, add: Predicate) -> Result<(), String> {
    let Some(existing) = filter.get_mut(&path) else {
        filter.insert(path, add);
        return Ok(());
    };
    let mut ops = match existing {
        Predicate::Equals(v) => Ops {
            eq: Some(v.clone()),
            ..Ops::default()
        },
        Predicate::Ops(o) => o.clone(),
    };
    let add = match add {
        Predicate::Equals(v) => Ops {
            eq: Some(v),
            ..Ops::default()
        },
        Predicate::Ops(o) => o,
    };
    let twice = || format!("`{path}` is compared twice the same way in this `where`");
    macro_rules! take {
        ($($field:ident),*) => {
            $(
                if add.$field.is_some() {
                    if ops.$field.is_some() {
                        return Err(twice());
                    }
                    ops.$field = add.$field;
                }
            )*
        };
    }
    take!(
        eq,
        ne,
        gt,
        gte,
        lt,
        lte,
        contains,
        exists,
        one_of,
        within_last,
        older_than,
        within_next,
        anniversary,
        before,
        after,
        near
    );
    *existing = Predicate::Ops(ops);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Printer

/// Prints a condition in the text form (of its [`Condition::canonical`] form).
pub fn print(condition: &Condition) -> String {
    let mut out = String::new();
    Printer { out: &mut out }.cond(&condition.canonical(), Level::Or, true);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    /// Top level or inside parentheses: anything goes.
    Or,
    /// An element of an `or` chain: an `or` needs parentheses.
    And,
    /// An element of an `and` chain or after `not`: `and` and `or` need parentheses.
    Unary,
}

struct Printer<'a> {
    out: &'a mut String,
}

impl fmt::Write for Printer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.push_str(s);
        Ok(())
    }
}

impl Printer<'_> {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// `tail`: nothing of the enclosing chain follows, so a one-comparison `where` needs no
    /// parentheses.
    fn cond(&mut self, c: &Condition, level: Level, tail: bool) {
        match c {
            Condition::Any(cs) | Condition::All(cs) if cs.len() < 2 => {
                self.push(if matches!(c, Condition::All(_)) {
                    "all("
                } else {
                    "any("
                });
                for (i, child) in cs.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.cond(child, Level::Or, true);
                }
                self.push(")");
            }
            Condition::Any(cs) => {
                if level == Level::Or {
                    self.chain(cs, " or ", Level::And, tail);
                } else {
                    self.push("(");
                    self.chain(cs, " or ", Level::And, true);
                    self.push(")");
                }
            }
            Condition::All(cs) => {
                if level == Level::Unary {
                    self.push("(");
                    self.chain(cs, " and ", Level::Unary, true);
                    self.push(")");
                } else {
                    self.chain(cs, " and ", Level::Unary, tail);
                }
            }
            Condition::Not(inner) => match inner.as_ref() {
                Condition::Did(h) => self.history(h, true, tail),
                Condition::Traits(_) => {
                    self.push("not (");
                    self.cond(inner, Level::Or, true);
                    self.push(")");
                }
                _ => {
                    self.push("not ");
                    self.cond(inner, Level::Unary, tail);
                }
            },
            Condition::Traits(filter) => {
                // Canonical: exactly one path with one operator.
                for (i, (path, predicate)) in filter.iter().enumerate() {
                    if i > 0 {
                        self.push(" and ");
                    }
                    self.comparisons(path, predicate, " and ");
                }
            }
            Condition::Did(h) => self.history(h, false, tail),
            Condition::Aggregate(a) => {
                self.push(a.function.as_str());
                self.push("(");
                self.path(&a.property);
                self.push(") of ");
                self.string(&a.event);
                self.window(a.within.as_deref());
                self.where_filter(&a.filter, false);
                self.push(" ");
                self.push(a.op.symbol());
                self.push(" ");
                self.float(a.value);
            }
            Condition::Engaged(e) => {
                self.push(e.engagement.as_str());
                self.push(match e.channel {
                    Some(Channel::Email) => " email",
                    Some(Channel::Sms) => " sms",
                    None => " any message",
                });
                if let Some(j) = &e.journey {
                    self.push(" from journey ");
                    self.string(j);
                }
                if let Some(t) = &e.template {
                    self.push(" with template ");
                    self.string(t);
                }
                self.window(e.within.as_deref());
            }
            Condition::InList(list) => {
                self.push("in list ");
                self.string(list);
            }
            Condition::Event(e) => {
                if !e.performed {
                    self.push("no ");
                }
                self.push("event ");
                self.string(&e.name);
                self.push(" since entry");
                if e.match_key {
                    self.push(" matching key");
                }
                self.where_filter(&e.filter, tail);
            }
            Condition::Trigger(f) => {
                self.push("trigger");
                self.where_filter(f, tail);
            }
            Condition::Message(m) => {
                self.push("message ");
                if is_plain_word(&m.node) {
                    self.push(&m.node);
                } else {
                    self.string(&m.node);
                }
                self.push(" ");
                self.push(m.engagement.as_str());
            }
        }
    }

    fn chain(&mut self, cs: &[Condition], sep: &str, level: Level, tail: bool) {
        for (i, child) in cs.iter().enumerate() {
            if i > 0 {
                self.push(sep);
            }
            self.cond(child, level, tail && i + 1 == cs.len());
        }
    }

    fn history(&mut self, h: &HistoryCondition, negated: bool, tail: bool) {
        self.push(if negated { "did not " } else { "did " });
        self.string(&h.event);
        if !h.times.is_default() {
            let (words, n) = match h.times {
                Times::Gte(n) => ("at least", n),
                Times::Lte(n) => ("at most", n),
                Times::Eq(n) => ("exactly", n),
            };
            let unit = if n == 1 { "time" } else { "times" };
            self.push(&format!(" {words} {n} {unit}"));
        }
        self.window(h.within.as_deref());
        self.where_filter(&h.filter, tail);
    }

    fn window(&mut self, within: Option<&str>) {
        if let Some(w) = within {
            self.push(" in last ");
            self.push(w);
        }
    }

    fn where_filter(&mut self, filter: &Filter, bare_single: bool) {
        if filter.is_empty() {
            return;
        }
        let count: usize = filter
            .values()
            .map(|p| super::split_predicate(p).len())
            .sum();
        let grouped = !(bare_single && count == 1);
        self.push(" where ");
        if grouped {
            self.push("(");
        }
        for (i, (path, predicate)) in filter.iter().enumerate() {
            if i > 0 {
                self.push(" and ");
            }
            self.comparisons(path, predicate, " and ");
        }
        if grouped {
            self.push(")");
        }
    }

    /// `path op value` for each operator of the predicate.
    fn comparisons(&mut self, path: &str, predicate: &Predicate, sep: &str) {
        for (i, p) in super::split_predicate(predicate).iter().enumerate() {
            if i > 0 {
                self.push(sep);
            }
            self.path(path);
            self.push(" ");
            self.comparison(p);
        }
    }

    /// One operator (as produced by `split_predicate`).
    fn comparison(&mut self, p: &Predicate) {
        let o = match p {
            Predicate::Equals(v) => {
                self.push("= ");
                self.value(v);
                return;
            }
            Predicate::Ops(o) => o,
        };
        if let Some(v) = &o.eq {
            self.push("= ");
            self.value(v);
        } else if let Some(v) = &o.ne {
            self.push("!= ");
            self.value(v);
        } else if let Some(n) = o.gt {
            self.push("> ");
            self.float(n);
        } else if let Some(n) = o.gte {
            self.push(">= ");
            self.float(n);
        } else if let Some(n) = o.lt {
            self.push("< ");
            self.float(n);
        } else if let Some(n) = o.lte {
            self.push("<= ");
            self.float(n);
        } else if let Some(v) = &o.contains {
            self.push("contains ");
            self.value(v);
        } else if let Some(e) = o.exists {
            self.push(if e { "exists" } else { "not exists" });
        } else if let Some(items) = &o.one_of {
            self.push("in ");
            self.value(&Value::Array(items.clone()));
        } else if let Some(d) = &o.within_last {
            self.push("within last ");
            self.push(d);
        } else if let Some(d) = &o.older_than {
            self.push("older than ");
            self.push(d);
        } else if let Some(d) = &o.within_next {
            self.push("within next ");
            self.push(d);
        } else if let Some(a) = &o.anniversary {
            self.push("anniversary ");
            self.push(a);
        } else if let Some(d) = &o.before {
            self.push("before ");
            self.string(d);
        } else if let Some(d) = &o.after {
            self.push("after ");
            self.string(d);
        } else if let Some(n) = &o.near {
            self.push("near ");
            self.float(n.lat);
            self.push(", ");
            self.float(n.lon);
            self.push(" within ");
            self.float(n.km);
            self.push(" km");
        }
    }

    fn path(&mut self, path: &str) {
        if is_plain_word(path) {
            self.push(path);
        } else {
            self.push("`");
            self.push(&path.replace('\\', "\\\\").replace('`', "\\`"));
            self.push("`");
        }
    }

    fn string(&mut self, s: &str) {
        self.push(&serde_json::to_string(s).unwrap_or_default());
    }

    fn float(&mut self, n: f64) {
        use fmt::Write;
        let _ = write!(self, "{n}");
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.string(s),
            Value::Number(n) => {
                if n.is_f64() {
                    let text = n.as_f64().map(|f| f.to_string()).unwrap_or_default();
                    self.push(&text);
                    if !text.contains('.') {
                        self.push(".0");
                    }
                } else {
                    self.push(&n.to_string());
                }
            }
            Value::Bool(b) => self.push(if *b { "true" } else { "false" }),
            Value::Null => self.push("null"),
            Value::Array(items) => {
                self.push("[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.value(item);
                }
                self.push("]");
            }
            // Not expressible in the text form; `validate` rejects it (a misspelt operator).
            Value::Object(_) => self.push(&v.to_string()),
        }
    }
}

/// An identifier or dotted path that lexes as one word and is not a keyword.
fn is_plain_word(s: &str) -> bool {
    let mut parts = s.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let first_ok = first.chars().next().is_some_and(is_word_start)
        && first.chars().all(is_word_char)
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(first));
    first_ok && parts.all(|p| !p.is_empty() && p.chars().all(is_word_char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(MAX_CONDITION_DEPTH)).is_ok());
        let e = parse(&nested(MAX_CONDITION_DEPTH + 1)).unwrap_err();
        assert!(e.message.contains("at most 32 levels"), "{e}");
        assert!(parse(&format!("{}a = 1", "not ".repeat(MAX_CONDITION_DEPTH))).is_ok());
        assert!(parse(&format!("{}a = 1", "not ".repeat(100_000))).is_err());
        let groups = format!("{}a = 1{}", "all(".repeat(40), ")".repeat(40));
        assert!(parse(&groups).is_err());
        let lists = format!("a in {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&lists).unwrap_err().message.contains("lists"));
        // What the parser accepts, validation accepts too.
        let c = parse(&nested(MAX_CONDITION_DEPTH)).unwrap();
        assert!(crate::condition::validate(&c, crate::condition::Scope::Segment).is_empty());
    }

    /// 32 `not`s around a comparison parse, and print as `not … not (a < 3)`: that must parse
    /// back too (found by the condition_text fuzz target).
    #[test]
    fn negations_at_the_limit_print_and_parse_back() {
        let c = parse(&format!("{}a < 3", "not ".repeat(MAX_CONDITION_DEPTH))).unwrap();
        let printed = print(&c);
        assert!(printed.ends_with("not (a < 3)"), "{printed}");
        assert_eq!(parse(&printed).unwrap(), c);
        assert!(parse(&format!("{}a < 3", "not ".repeat(MAX_CONDITION_DEPTH + 1))).is_err());
        let parenthesised = format!("{}(a < 3)", "not ".repeat(MAX_CONDITION_DEPTH + 1));
        assert!(parse(&parenthesised).is_err());
    }

    #[test]
    fn lexes_durations_numbers_and_paths() {
        let toks: Vec<Tok> = lex("a.b >= -1.5 30d 1d12h `x y` \"s\\\"\"")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert_eq!(
            toks,
            vec![
                Tok::Word("a.b".into()),
                Tok::Ge,
                Tok::Num("-1.5".into()),
                Tok::Dur("30d".into()),
                Tok::Dur("1d12h".into()),
                Tok::Path("x y".into()),
                Tok::Str("s\"".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn plain_words() {
        assert!(is_plain_word("address.city"));
        assert!(is_plain_word("items.0.price"));
        assert!(!is_plain_word("first name"));
        assert!(!is_plain_word("event"));
        assert!(!is_plain_word("Event.name"));
        assert!(!is_plain_word(""));
        assert!(!is_plain_word("a."));
        assert!(!is_plain_word("1a"));
    }
}
