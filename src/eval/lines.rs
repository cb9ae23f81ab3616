//! Line numbers for records read through the csv crate, without holding the
//! file: the csv crate counts lines without the blank ones it skips (and one
//! short after a CRLF line), so a message naming "line N" would name the
//! wrong one. [`count_lines`] wraps the reader and notes where every newline
//! and blank line is as the bytes pass; [`LineNumbers::line_at`] turns a
//! record's byte offset into its line and forgets what lies before it, so
//! what is held is what the csv crate has buffered, not the file.
//!
//! ```
//! use std::io::Read;
//!
//! let (mut reader, lines) = recwal::eval::count_lines("a\r\n\r\nb\n".as_bytes());
//! let mut text = String::new();
//! reader.read_to_string(&mut text)?;
//! assert_eq!(lines.line_at(0), 1);
//! // The record after the blank line starts at byte 3 (where the csv crate
//! // began to look) but is on line 3.
//! assert_eq!(lines.line_at(3), 3);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::rc::Rc;

/// What the reader saw so far and the parser has not yet asked about,
/// shared between the reader that sees the bytes and the parser that
/// numbers lines: the byte offsets of the newlines, and the (1-based)
/// numbers of the blank lines. Records are asked about in file order, so
/// what lies before the last one asked about is dropped.
#[derive(Clone, Default)]
pub struct LineNumbers(Rc<RefCell<Seen>>);

#[derive(Default)]
struct Seen {
    /// Newlines dropped from the front of `newlines`.
    lines_before: usize,
    newlines: VecDeque<u64>,
    blank_lines: VecDeque<usize>,
}

impl LineNumbers {
    /// The (1-based) line of the first non-blank line at or after byte `at`
    /// (never less than an earlier call's `at`): the csv crate skips blank
    /// lines, and a record's position is where it began to look, before
    /// them.
    pub fn line_at(&self, at: u64) -> usize {
        let mut seen = self.0.borrow_mut();
        // `<=`: a record never starts on a newline, but after a CRLF line
        // the csv crate's position is that line's `\n`.
        while seen.newlines.front().is_some_and(|&newline| newline <= at) {
            seen.newlines.pop_front();
            seen.lines_before += 1;
        }
        let mut line = 1 + seen.lines_before;
        while let Some(&blank) = seen.blank_lines.front() {
            if blank > line {
                break;
            }
            if blank == line {
                line += 1;
            }
            seen.blank_lines.pop_front();
        }
        line
    }
}

/// A reader that notes where every newline and blank line is (a line with
/// nothing but a `\r` is blank).
pub struct CountLines<R> {
    inner: R,
    offset: u64,
    line: usize,
    has_content: bool,
    seen: LineNumbers,
}

/// `inner`, counted: read records through the first, ask the second for
/// their lines.
pub fn count_lines<R: Read>(inner: R) -> (CountLines<R>, LineNumbers) {
    let seen = LineNumbers::default();
    (CountLines { inner, offset: 0, line: 1, has_content: false, seen: seen.clone() }, seen)
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.0.borrow_mut();
        for (at, byte) in buf[..n].iter().enumerate() {
            match byte {
                b'\n' => {
                    seen.newlines.push_back(self.offset + at as u64);
                    if !self.has_content {
                        seen.blank_lines.push_back(self.line);
                    }
                    self.line += 1;
                    self.has_content = false;
                }
                b'\r' => {}
                _ => self.has_content = true,
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}
