//! RFC 1035 §5 master files: tokens, directives (`$ORIGIN`, `$TTL`,
//! `$INCLUDE`), inherited owners, TTLs and classes, into records for
//! [`Zone::build`](super::Zone) to check.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Includer, Parsed, Zone, ZoneError};
use crate::name::Name;
use crate::rdata::{self, parse_text, Token};
use crate::wire::rtype;

struct Line {
    number: usize,
    indented: bool,
    tokens: Vec<Token>,
}

fn tokenize(text: &str, file: &str) -> Result<Vec<Line>, ZoneError> {
    let err = |line, message: &str| ZoneError { file: file.into(), line, message: message.into() };
    let mut lines = Vec::new();
    let mut cur: Option<Line> = None;
    let mut depth = 0usize;
    let mut line_no = 1usize;
    let mut chars = text.chars().peekable();
    let mut at_line_start = true;
    let mut paren_line = 0;
    while let Some(&c) = chars.peek() {
        if at_line_start && depth == 0 {
            if let Some(l) = cur.take() {
                lines.push(l);
            }
            cur = Some(Line { number: line_no, indented: c == ' ' || c == '\t', tokens: Vec::new() });
            at_line_start = false;
        }
        match c {
            '\n' => {
                chars.next();
                line_no += 1;
                at_line_start = true;
            }
            ' ' | '\t' | '\r' => {
                chars.next();
            }
            ';' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '(' => {
                chars.next();
                if depth == 0 {
                    paren_line = line_no;
                }
                depth += 1;
            }
            ')' => {
                chars.next();
                depth = depth.checked_sub(1).ok_or_else(|| err(line_no, "')' without '('"))?;
            }
            '"' => {
                chars.next();
                let start = line_no;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err(start, "unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            s.push('\\');
                            match chars.next() {
                                Some(n) => {
                                    if n == '\n' {
                                        line_no += 1;
                                    }
                                    s.push(n);
                                }
                                None => return Err(err(start, "unterminated quoted string")),
                            }
                        }
                        Some(ch) => {
                            if ch == '\n' {
                                line_no += 1;
                            }
                            s.push(ch);
                        }
                    }
                }
                if let Some(l) = cur.as_mut() {
                    l.tokens.push(Token { text: s, quoted: true });
                }
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if matches!(ch, ' ' | '\t' | '\r' | '\n' | '(' | ')' | ';' | '"') {
                        break;
                    }
                    chars.next();
                    s.push(ch);
                    if ch == '\\' {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    }
                }
                if let Some(l) = cur.as_mut() {
                    l.tokens.push(Token { text: s, quoted: false });
                }
            }
        }
    }
    if depth > 0 {
        return Err(err(paren_line, "'(' is never closed"));
    }
    if let Some(l) = cur.take() {
        lines.push(l);
    }
    Ok(lines.into_iter().filter(|l| !l.tokens.is_empty()).collect())
}

struct Parser<'a> {
    includer: Option<Includer<'a>>,
    out: Vec<Parsed>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
}

impl Parser<'_> {
    fn file(&mut self, text: &str, file: &str, mut origin: Name, depth: usize) -> Result<(), ZoneError> {
        let mut last_owner: Option<Name> = None;
        let shared: Rc<str> = file.into();
        for line in tokenize(text, file)? {
            let err = |message: String| ZoneError { file: file.into(), line: line.number, message };
            let t = &line.tokens;
            let first = t[0].text.as_str();
            if !t[0].quoted && first.starts_with('$') {
                match first.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let [_, o] = &t[..] else { return Err(err("$ORIGIN needs one name".into())) };
                        origin = Name::parse(&o.text, Some(&origin)).map_err(|e| err(format!("bad $ORIGIN: {e}")))?;
                    }
                    "$TTL" => {
                        let [_, v] = &t[..] else { return Err(err("$TTL needs one value".into())) };
                        self.default_ttl = Some(rdata::parse_ttl(&v.text).map_err(|e| err(format!("bad $TTL: {e}")))?);
                    }
                    "$INCLUDE" => {
                        if t.len() < 2 || t.len() > 3 {
                            return Err(err("$INCLUDE needs a file name and optionally an origin".into()));
                        }
                        let Some(includer) = self.includer else {
                            return Err(err("$INCLUDE is not available here (VM images have no files)".into()));
                        };
                        if depth >= 8 {
                            return Err(err("$INCLUDE nested too deeply".into()));
                        }
                        let path = &t[1].text;
                        let body = includer(path).map_err(|e| err(format!("$INCLUDE {path}: {e}")))?;
                        let inc_origin = match t.get(2) {
                            Some(o) => {
                                Name::parse(&o.text, Some(&origin)).map_err(|e| err(format!("bad origin: {e}")))?
                            }
                            None => origin.clone(),
                        };
                        self.file(&body, path, inc_origin, depth + 1)?;
                    }
                    other => return Err(err(format!("unknown directive {other}"))),
                }
                continue;
            }
            let mut i = 0;
            let owner = if line.indented {
                last_owner.clone().ok_or_else(|| err("no owner name: the first record must name one".into()))?
            } else {
                i = 1;
                Name::parse(first, Some(&origin)).map_err(|e| err(format!("bad owner name '{first}': {e}")))?
            };
            let mut ttl = None;
            let mut class_seen = false;
            while i < t.len() {
                let tok = &t[i].text;
                let up = tok.to_ascii_uppercase();
                if !class_seen && up == "IN" {
                    class_seen = true;
                } else if !class_seen && matches!(up.as_str(), "CH" | "HS" | "CS" | "ANY" | "NONE") {
                    return Err(err(format!("class {up} is not supported (only IN)")));
                } else if ttl.is_none() && tok.starts_with(|c: char| c.is_ascii_digit()) {
                    ttl = Some(rdata::parse_ttl(tok).map_err(err)?);
                } else {
                    break;
                }
                i += 1;
            }
            let type_tok = t.get(i).ok_or_else(|| err("record has no type".into()))?;
            let rt = rdata::type_from_name(&type_tok.text)
                .ok_or_else(|| err(format!("unknown record type '{}'", type_tok.text)))?;
            if matches!(rt, rtype::OPT | rtype::AXFR | rtype::IXFR | rtype::ANY | rtype::MAILA | rtype::MAILB) {
                return Err(err(format!("type {} cannot appear in a zone", rdata::type_name(rt))));
            }
            let data = parse_text(rt, &t[i + 1..], &origin).map_err(err)?;
            // Leaves room for the header, question and owner in one 64 KiB
            // TCP message (AXFR sends each record whole).
            if data.to_wire().len() > 65000 {
                return Err(err("record data over 65000 octets".into()));
            }
            let ttl = match ttl {
                Some(v) => {
                    self.last_ttl = Some(v);
                    v
                }
                None => self.default_ttl.or(self.last_ttl).ok_or_else(|| err("no TTL: give one or set $TTL".into()))?,
            };
            last_owner = Some(owner.clone());
            self.out.push(Parsed { owner, rtype: rt, ttl, rdata: data, file: shared.clone(), line: line.number });
        }
        Ok(())
    }
}

impl Zone {
    /// Parses and checks the master file `text` for the zone `origin`.
    /// `file` names it in errors; `includer` reads `$INCLUDE`d files.
    pub fn parse(text: &str, origin: &Name, file: &str, includer: Option<Includer<'_>>) -> Result<Zone, ZoneError> {
        let mut p = Parser { includer, out: Vec::new(), default_ttl: None, last_ttl: None };
        p.file(text, file, origin.clone(), 0)?;
        Zone::build(origin, p.out, file)
    }
}
