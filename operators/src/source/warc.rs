//! A WARC record reader that survives real crawl files: a bad record is reported with its byte
//! offset and the reader goes on at the next `WARC/1.x` line, instead of ending the file (or
//! panicking on a header that is not UTF-8, as the `warc` crate did). Headers are capped, so a
//! file with no newline is not buffered whole; a body is read by its `Content-Length`, and a
//! length that does not end at a record boundary is caught by the blank line that must follow.
//!
//! Format (ISO 28500): a version line `WARC/1.0`, `Name: value` header lines, a blank line,
//! `Content-Length` bytes of body, then `\r\n\r\n`.

use std::io::{self, BufRead};

/// Bounds on what one record may hold in memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The version line and header lines together.
    pub max_header: usize,
    /// A body longer than this is skipped (and reported), not read.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_header: 64 << 10, max_body: 64 << 20 }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WarcRecord {
    /// Byte offset of the version line in the (decompressed) stream.
    pub offset: u64,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WarcRecord {
    /// The first header of that name (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A span of the file that is not a usable record.
#[derive(Clone, Debug, PartialEq)]
pub struct Bad {
    pub offset: u64,
    /// `corrupt_warc`, `invalid_utf8_header`, `warc_header_too_large`, `warc_record_too_large`,
    /// `truncated_input`, `io_error`, `no_warc_record`.
    pub reason: &'static str,
    pub detail: String,
    /// The record's `WARC-Record-ID` when it could be read.
    pub record_id: Option<String>,
    /// Nothing after this can be read (end of stream, I/O error).
    pub fatal: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Record(WarcRecord),
    Bad(Bad),
}

pub struct WarcReader<R> {
    inner: R,
    /// Bytes given back (a body that ran into the next record), read before `inner`.
    carry: Vec<u8>,
    carry_pos: usize,
    /// Offset of the next byte.
    pos: u64,
    limits: Limits,
    /// Skipping to the next version line after a bad record: what is skipped is part of it.
    resync: bool,
    records: u64,
    done: bool,
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

fn is_version(line: &[u8]) -> bool {
    line.starts_with(b"WARC/1.")
}

/// `\n` + a version line: where the next record starts inside an overrunning body.
fn next_record_in(body: &[u8]) -> Option<usize> {
    (0..body.len().saturating_sub(7)).find(|&i| body[i] == b'\n' && is_version(&body[i + 1..])).map(|i| i + 1)
}

impl<R: BufRead> WarcReader<R> {
    pub fn new(inner: R, limits: Limits) -> WarcReader<R> {
        WarcReader {
            inner,
            carry: Vec::new(),
            carry_pos: 0,
            pos: 0,
            limits,
            resync: false,
            records: 0,
            done: false,
        }
    }

    fn buf(&mut self) -> io::Result<&[u8]> {
        if self.carry_pos < self.carry.len() {
            return Ok(&self.carry[self.carry_pos..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if self.carry_pos < self.carry.len() {
            self.carry_pos += n;
            if self.carry_pos >= self.carry.len() {
                self.carry.clear();
                self.carry_pos = 0;
            }
        } else {
            self.inner.consume(n);
        }
        self.pos += n as u64;
    }

    fn unread(&mut self, bytes: &[u8]) {
        let mut carry = bytes.to_vec();
        carry.extend_from_slice(&self.carry[self.carry_pos..]);
        self.carry = carry;
        self.carry_pos = 0;
        self.pos -= bytes.len() as u64;
    }

    /// Reads a line (with its `\n`) of at most `max` bytes into `out`; false when it ended
    /// without a newline (the limit or the end of the stream).
    fn read_line(&mut self, max: usize, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        loop {
            let room = max - out.len();
            let (take, found) = {
                let b = self.buf()?;
                if b.is_empty() {
                    return Ok(false);
                }
                let b = &b[..b.len().min(room)];
                match b.iter().position(|&c| c == b'\n') {
                    Some(i) => {
                        out.extend_from_slice(&b[..=i]);
                        (i + 1, true)
                    }
                    None => {
                        out.extend_from_slice(b);
                        (b.len(), false)
                    }
                }
            };
            self.consume(take);
            if found {
                return Ok(true);
            }
            if out.len() >= max {
                return Ok(false);
            }
        }
    }

    /// Reads up to `n` bytes (fewer only at the end of the stream).
    fn read_n(&mut self, n: u64, out: &mut Vec<u8>) -> io::Result<()> {
        while (out.len() as u64) < n {
            let take = {
                let b = self.buf()?;
                if b.is_empty() {
                    return Ok(());
                }
                let take = b.len().min((n - out.len() as u64) as usize);
                out.extend_from_slice(&b[..take]);
                take
            };
            self.consume(take);
        }
        Ok(())
    }

    fn skip_n(&mut self, mut n: u64) -> io::Result<u64> {
        let mut skipped = 0;
        while n > 0 {
            let take = {
                let b = self.buf()?;
                if b.is_empty() {
                    break;
                }
                b.len().min(n as usize)
            };
            self.consume(take);
            n -= take as u64;
            skipped += take as u64;
        }
        Ok(skipped)
    }

    /// Eats the blank line after a body; false when something else follows (a wrong
    /// `Content-Length`). The end of the stream counts as a boundary.
    fn trailer(&mut self) -> io::Result<bool> {
        let mut eaten = 0;
        let mut newlines = 0;
        while eaten < 4 {
            let c = match self.buf()?.first() {
                Some(&c) => c,
                None => return Ok(true),
            };
            if c != b'\r' && c != b'\n' {
                break;
            }
            newlines += usize::from(c == b'\n');
            self.consume(1);
            eaten += 1;
        }
        if newlines >= 2 {
            return Ok(true);
        }
        Ok(self.buf()?.is_empty())
    }

    fn bad(&mut self, offset: u64, reason: &'static str, detail: String, record_id: Option<String>) -> Item {
        Item::Bad(Bad { offset, reason, detail, record_id, fatal: false })
    }

    fn fatal(&mut self, offset: u64, reason: &'static str, detail: String) -> Item {
        self.done = true;
        Item::Bad(Bad { offset, reason, detail, record_id: None, fatal: true })
    }

    fn io_error(&mut self, e: io::Error) -> Item {
        let reason = super::io_reason(&e);
        let pos = self.pos;
        self.fatal(pos, reason, format!("at byte {pos}: {e}"))
    }

    fn next_item(&mut self) -> io::Result<Option<Item>> {
        let max = self.limits.max_header;
        let mut line = Vec::new();
        // The version line, after blank lines; anything else is skipped up to it.
        let garbage_at = self.pos;
        let mut garbage = 0u64;
        loop {
            let found = self.read_line(max, &mut line)?;
            if line.is_empty() {
                self.done = true;
                if self.records == 0 {
                    return Ok(Some(self.fatal(
                        0,
                        "no_warc_record",
                        format!("no WARC record in {garbage} bytes: not a WARC file"),
                    )));
                }
                if garbage > 0 && !std::mem::take(&mut self.resync) {
                    return Ok(Some(self.bad(
                        garbage_at,
                        "corrupt_warc",
                        format!("{garbage} bytes at byte {garbage_at} are not a WARC record (to the end of the file)"),
                        None,
                    )));
                }
                return Ok(None);
            }
            if found && is_version(&line) {
                break;
            }
            if !(found && is_blank(&line)) {
                garbage += line.len() as u64;
            }
        }
        if garbage > 0 && !std::mem::take(&mut self.resync) {
            self.unread(&line.clone());
            return Ok(Some(self.bad(
                garbage_at,
                "corrupt_warc",
                format!(
                    "{garbage} bytes at byte {garbage_at} are not a WARC record; skipped to the next one"
                ),
                None,
            )));
        }
        self.resync = false;
        let offset = self.pos - line.len() as u64;
        self.records += 1;
        // Header lines up to the blank line.
        let mut total = line.len();
        let mut raw: Vec<Vec<u8>> = Vec::new();
        loop {
            if total >= max {
                self.resync = true;
                return Ok(Some(self.bad(
                    offset,
                    "warc_header_too_large",
                    format!("WARC record at byte {offset}: headers exceed {max} bytes"),
                    None,
                )));
            }
            let found = self.read_line(max - total, &mut line)?;
            total += line.len();
            if !found {
                if line.is_empty() || total < max {
                    return Ok(Some(self.fatal(
                        offset,
                        "truncated_input",
                        format!("WARC record at byte {offset}: the file ends in its headers"),
                    )));
                }
                continue;
            }
            if is_blank(&line) {
                break;
            }
            raw.push(line.clone());
        }
        let mut headers = Vec::with_capacity(raw.len());
        let mut not_utf8 = None;
        for l in &raw {
            let l = l.strip_suffix(b"\n").unwrap_or(l);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let Some(colon) = l.iter().position(|&c| c == b':') else { continue };
            let name = String::from_utf8_lossy(&l[..colon]).trim().to_string();
            match std::str::from_utf8(&l[colon + 1..]) {
                Ok(v) => headers.push((name, v.trim().to_string())),
                Err(e) => {
                    not_utf8.get_or_insert(format!("{name} (byte {} of its value)", e.valid_up_to()));
                    headers.push((name, String::from_utf8_lossy(&l[colon + 1..]).trim().to_string()));
                }
            }
        }
        let record_id = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("WARC-Record-ID"))
            .map(|(_, v)| v.trim_start_matches('<').trim_end_matches('>').to_string());
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.parse::<u64>().ok());
        let Some(length) = length else {
            self.resync = true;
            return Ok(Some(self.bad(
                offset,
                "corrupt_warc",
                format!("WARC record at byte {offset}: no valid Content-Length"),
                record_id,
            )));
        };
        if length > self.limits.max_body {
            let skipped = self.skip_n(length)?;
            if skipped < length {
                return Ok(Some(self.fatal(
                    offset,
                    "truncated_input",
                    format!("WARC record at byte {offset}: the file ends in its body"),
                )));
            }
            self.trailer()?;
            return Ok(Some(self.bad(
                offset,
                "warc_record_too_large",
                format!(
                    "WARC record at byte {offset}: body of {length} bytes exceeds {}",
                    self.limits.max_body
                ),
                record_id,
            )));
        }
        let mut body = Vec::with_capacity(length as usize);
        self.read_n(length, &mut body)?;
        if (body.len() as u64) < length {
            return Ok(Some(self.fatal(
                offset,
                "truncated_input",
                format!(
                    "WARC record at byte {offset}: the file ends in its body ({} of {length} bytes)",
                    body.len()
                ),
            )));
        }
        if !self.trailer()? {
            // The length does not end at a boundary: too long (the body ran into the next
            // record, given back to the reader) or too short (skipped to the next record).
            if let Some(at) = next_record_in(&body) {
                self.unread(&body[at..]);
            } else {
                self.resync = true;
            }
            return Ok(Some(self.bad(
                offset,
                "corrupt_warc",
                format!(
                    "WARC record at byte {offset}: Content-Length {length} does not end at a record boundary"
                ),
                record_id,
            )));
        }
        if let Some(which) = not_utf8 {
            return Ok(Some(self.bad(
                offset,
                "invalid_utf8_header",
                format!("WARC record at byte {offset}: header {which} is not UTF-8"),
                record_id,
            )));
        }
        Ok(Some(Item::Record(WarcRecord { offset, headers, body })))
    }
}

impl<R: BufRead> Iterator for WarcReader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        match self.next_item() {
            Ok(item) => item,
            Err(e) => Some(self.io_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: &str, id: u32, body: &str) -> String {
        format!(
            "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{id}>\r\nWARC-Target-URI: http://x/{id}\r\nContent-Length: {}\r\n\r\n{body}\r\n\r\n",
            body.len()
        )
    }

    fn read(bytes: &[u8], limits: Limits) -> Vec<Item> {
        WarcReader::new(std::io::BufReader::with_capacity(16, bytes), limits).collect()
    }

    fn summary(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Record(r) => {
                    format!("{} {}", r.header("warc-record-id").unwrap(), String::from_utf8_lossy(&r.body))
                }
                Item::Bad(b) => format!("{}@{}", b.reason, b.offset),
            })
            .collect()
    }

    #[test]
    fn records_with_their_headers_bodies_and_offsets() {
        let a = record("conversion", 1, "Habari za asubuhi.");
        let b = record("conversion", 2, "Hyvää huomenta.\nToinen rivi.");
        let file = format!("{a}{b}");
        let items = read(file.as_bytes(), Limits::default());
        assert_eq!(
            summary(&items),
            ["<urn:uuid:1> Habari za asubuhi.", "<urn:uuid:2> Hyvää huomenta.\nToinen rivi."]
        );
        let Item::Record(r) = &items[1] else { panic!() };
        assert_eq!(r.offset, a.len() as u64);
        assert_eq!(r.header("WARC-Target-URI"), Some("http://x/2"));
    }

    #[test]
    fn a_bad_record_in_the_middle_is_reported_and_the_rest_read() {
        let (a, c) = (record("conversion", 1, "eka"), record("conversion", 3, "kolmas"));
        // A garbage line between records.
        let garbage = format!("{a}this is not WARC\n{c}");
        assert_eq!(
            summary(&read(garbage.as_bytes(), Limits::default())),
            [
                "<urn:uuid:1> eka".to_string(),
                format!("corrupt_warc@{}", a.len()),
                "<urn:uuid:3> kolmas".to_string()
            ]
        );
        // Content-Length too long: the body runs into the next record, which is still read.
        let long = format!(
            "{a}{}{c}",
            record("conversion", 2, "toinen").replace("Content-Length: 6", "Content-Length: 30")
        );
        assert_eq!(
            summary(&read(long.as_bytes(), Limits::default())),
            [
                "<urn:uuid:1> eka".to_string(),
                format!("corrupt_warc@{}", a.len()),
                "<urn:uuid:3> kolmas".to_string()
            ]
        );
        // Too short: the rest of its body is skipped with it.
        let short = long.replace("Content-Length: 30", "Content-Length: 2");
        assert_eq!(
            summary(&read(short.as_bytes(), Limits::default())),
            [
                "<urn:uuid:1> eka".to_string(),
                format!("corrupt_warc@{}", a.len()),
                "<urn:uuid:3> kolmas".to_string()
            ]
        );
        // No Content-Length at all.
        let none = long.replace("Content-Length: 30\r\n", "");
        assert_eq!(
            summary(&read(none.as_bytes(), Limits::default()))[1],
            format!("corrupt_warc@{}", a.len())
        );
        assert_eq!(read(none.as_bytes(), Limits::default()).len(), 3);
    }

    #[test]
    fn a_header_that_is_not_utf8_rejects_its_record_only() {
        let mut file = record("conversion", 1, "eka").into_bytes();
        let at = file.len();
        let bad = record("conversion", 2, "toinen").replace("http://x/2", "http://x/\u{1}");
        let mut bad = bad.into_bytes();
        let i = bad.iter().position(|&c| c == 1).unwrap();
        bad[i] = 0xff;
        file.extend(bad);
        file.extend(record("conversion", 3, "kolmas").into_bytes());
        let items = read(&file, Limits::default());
        assert_eq!(
            summary(&items),
            [
                "<urn:uuid:1> eka".to_string(),
                format!("invalid_utf8_header@{at}"),
                "<urn:uuid:3> kolmas".to_string()
            ]
        );
        let Item::Bad(b) = &items[1] else { panic!() };
        assert_eq!(b.record_id.as_deref(), Some("urn:uuid:2"));
        assert!(b.detail.contains("WARC-Target-URI"), "{}", b.detail);
    }

    #[test]
    fn huge_headers_and_bodies_are_capped_and_non_warc_files_say_so() {
        let limits = Limits { max_header: 256, max_body: 64 };
        let a = record("conversion", 1, "eka");
        // A header line with no newline, longer than the cap: not buffered whole.
        let huge = format!("{a}WARC/1.0\r\nX-Junk: {}", "x".repeat(10_000));
        let items = read(huge.as_bytes(), limits);
        assert_eq!(
            summary(&items),
            ["<urn:uuid:1> eka".to_string(), format!("warc_header_too_large@{}", a.len())]
        );
        let big = format!("{a}{}{a}", record("conversion", 2, &"y".repeat(100)));
        assert_eq!(
            summary(&read(big.as_bytes(), limits)),
            [
                "<urn:uuid:1> eka".to_string(),
                format!("warc_record_too_large@{}", a.len()),
                "<urn:uuid:1> eka".to_string()
            ]
        );
        let random: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let items = read(&random, Limits::default());
        assert!(
            matches!(items.last(), Some(Item::Bad(Bad { reason: "no_warc_record", fatal: true, .. }))),
            "{items:?}"
        );
        assert_eq!(summary(&read(b"", Limits::default())), ["no_warc_record@0"]);
        let cut = &a.as_bytes()[..a.len() - 10];
        assert!(matches!(
            read(cut, Limits::default()).last(),
            Some(Item::Bad(Bad { reason: "truncated_input", .. }))
        ));
    }
}
