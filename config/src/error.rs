//! Errors that point at a place in the config file.
//!
//! Every problem is reported as `file:line:col: message` (1-based line and column, column
//! counted in characters) because that is the format editors and terminals turn into a
//! clickable location. Validation collects all problems into [`ConfigErrors`] so a user
//! fixes a broken file in one round instead of one error per run.

use std::fmt;
use std::ops::Range;

/// One problem in a config file, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to [`crate::parse_str`] (or the path's display for [`crate::load`]).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong; names the key it is about (e.g. `account[0].registrar: ...`).
    pub message: String,
}

impl ConfigError {
    /// An error at an explicit location.
    pub fn new(
        file: impl Into<String>,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            col,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// All problems found in a config file, in file order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` if there are no errors (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The individual errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// One error per line, no trailing newline.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns byte offsets of one source text into `file:line:col` errors and collects them.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// 1-based (line, col) of a byte offset; out-of-range offsets are clamped.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// Records an error at the start of `span`.
    pub(crate) fn at(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let (line, col) = self.line_col(span.start);
        self.errors
            .push(ConfigError::new(self.file, line, col, message));
    }

    /// Records an error at byte `offset` of the *value* of a string whose source (quotes
    /// included) spans `span`. Offsets map one-to-one only for a one-line string with no
    /// escape before `offset`; otherwise the error points at the string's opening quote
    /// rather than at a wrong column.
    pub(crate) fn at_in_string(
        &mut self,
        span: &Range<usize>,
        offset: usize,
        message: impl Into<String>,
    ) {
        let source = self.text.get(span.clone()).unwrap_or("");
        let exact = if source.starts_with("'''") || source.starts_with("\"\"\"") {
            false
        } else if source.starts_with('\'') {
            true
        } else if let Some(inner) = source.strip_prefix('"') {
            inner
                .get(..offset)
                .is_some_and(|before| !before.contains('\\'))
        } else {
            false
        };
        let start = if exact {
            span.start + 1 + offset
        } else {
            span.start
        };
        self.at(&(start..start), message);
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The collected errors sorted by position (stable, so same-place errors keep their order).
    pub(crate) fn finish(mut self) -> Option<ConfigErrors> {
        if self.errors.is_empty() {
            return None;
        }
        self.errors.sort_by_key(|e| (e.line, e.col));
        Some(ConfigErrors(self.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_chars() {
        let text = "a = 1\nbé = \"x\"\n";
        let sink = Sink::new("f", text);
        assert_eq!(sink.line_col(0), (1, 1));
        assert_eq!(sink.line_col(4), (1, 5));
        assert_eq!(sink.line_col(6), (2, 1));
        // "bé = " is 6 bytes but 5 chars; the quote is in column 6.
        let quote = text.find('"').unwrap();
        assert_eq!(sink.line_col(quote), (2, 6));
        // Past the end and inside a multi-byte char are clamped, never panic.
        assert_eq!(sink.line_col(1000), (3, 1));
        assert_eq!(sink.line_col(8), (2, 2));
    }

    #[test]
    fn at_in_string_maps_offsets_when_it_can() {
        // (source, byte offset of the problem in the string's value, expected column)
        let cases: &[(&str, usize, usize)] = &[
            (r#"u = "ab$x""#, 2, 8),
            ("u = 'ab$x'", 2, 8),
            // Columns count characters: `é` is two bytes, one column.
            (r#"u = "é$x""#, 2, 7),
            // An escape after the offset does not matter; one before it does.
            (r#"u = "a$x\n""#, 1, 7),
            (r#"u = "\na$x""#, 2, 5),
            // Multi-line strings may start with a newline that is dropped: no mapping.
            ("u = '''a$x'''", 1, 5),
            (r#"u = """a$x""""#, 1, 5),
        ];
        for (text, offset, col) in cases {
            let value_start = text.find(['"', '\'']).unwrap();
            let mut sink = Sink::new("f", text);
            sink.at_in_string(&(value_start..text.len()), *offset, "m");
            let e = sink.finish().unwrap();
            assert_eq!((e.0[0].line, e.0[0].col), (1, *col), "{text}");
        }
    }

    #[test]
    fn display_formats() {
        let e = ConfigError::new("c.toml", 3, 7, "account[0].user: required key is missing");
        assert_eq!(
            e.to_string(),
            "c.toml:3:7: account[0].user: required key is missing"
        );
        let all = ConfigErrors(vec![e.clone(), ConfigError::new("c.toml", 4, 1, "x")]);
        assert_eq!(all.to_string(), format!("{e}\nc.toml:4:1: x"));
    }
}
