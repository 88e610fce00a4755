//! Reading a spreadsheet's CSV as people's programs write it: the encoding (a byte-order mark,
//! the declared charset, or Windows-1252 when the bytes are not UTF-8), the separator (comma,
//! semicolon or tab, sniffed from the header row), quoted cells with separators and line
//! breaks, and the line each row starts on, counted as an editor shows it.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use poem_openapi::Enum;

use crate::domain::{DomainError, DomainResult};

/// The character between cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Delimiter {
    /// `,`: most programs, and Excel where the decimal mark is a point.
    Comma,
    /// `;`: Excel where the decimal mark is a comma (most of Europe).
    Semicolon,
    /// A tab: Excel's "Unicode Text" and many exports named `.tsv`.
    Tab,
}

impl Delimiter {
    /// Its name, as `delimiter=` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comma => "comma",
            Self::Semicolon => "semicolon",
            Self::Tab => "tab",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Self::Comma => b',',
            Self::Semicolon => b';',
            Self::Tab => b'\t',
        }
    }

    /// The first separator of the header row, outside a quoted first cell; a comma when the
    /// row has none (a one-column file). The first, not the most frequent: a rule a person can
    /// check by eye, and one the document's pattern states.
    fn sniff(text: &str) -> Self {
        let mut chars = text.chars().peekable();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' && chars.next_if_eq(&'"').is_none() {
                    break;
                }
            }
        }
        for c in chars {
            match c {
                ',' => return Self::Comma,
                ';' => return Self::Semicolon,
                '\t' => return Self::Tab,
                '\n' | '\r' => break,
                _ => {}
            }
        }
        Self::Comma
    }
}

/// What a file's text must match (after a byte-order mark): a first line with something on it
/// but blanks. The rest (which columns it names, which rows are good) is reported in the
/// result, row by row, not refused as a whole.
pub const HEADER_PATTERN: &str = "^\\uFEFF?[ \\t]*[^ \\t\\r\\n]";

/// How a file is to be read: what the request declared, if anything.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The `charset` of the request's `Content-Type`.
    pub charset: Option<String>,
    /// The separator, when the caller named it.
    pub delimiter: Option<Delimiter>,
}

/// One data row: its number (1 = the first after the header), the line of the file it starts
/// on (the header is line 1) and its cells, or why it could not be read.
#[derive(Debug)]
pub struct SheetRow {
    pub row: i64,
    pub line: i64,
    pub cells: Result<Vec<String>, String>,
}

/// A file read: its header cells as written, its rows, and how it was read.
#[derive(Debug)]
pub struct Sheet {
    pub headers: Vec<String>,
    pub rows: Vec<SheetRow>,
    /// The encoding's name as the WHATWG Encoding Standard spells it (`UTF-8`, `UTF-16LE`,
    /// `windows-1252`).
    pub encoding: &'static str,
    pub delimiter: Delimiter,
}

/// The file's text: by its byte-order mark, else by the declared charset, else UTF-8 when the
/// bytes are UTF-8 and Windows-1252 (Excel's "CSV (Comma delimited)" in the West) when not.
fn decode<'a>(
    bytes: &'a [u8],
    charset: Option<&str>,
) -> DomainResult<(Cow<'a, str>, &'static str)> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return Ok((text, encoding.name()));
    }
    let declared = match charset {
        Some(label) => Some(Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
            DomainError::invalid(
                "body",
                format!(
                    "is declared as charset `{label}`, which is not an encoding this server reads"
                ),
            )
        })?),
        None => None,
    };
    match declared {
        Some(encoding) if encoding != UTF_8 => {
            let (text, _) = encoding.decode_without_bom_handling(bytes);
            Ok((text, encoding.name()))
        }
        _ => match std::str::from_utf8(bytes) {
            Ok(text) => Ok((Cow::Borrowed(text), UTF_8.name())),
            Err(_) => {
                let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
                Ok((text, WINDOWS_1252.name()))
            }
        },
    }
}

/// Reads a CSV file into its header and rows. A file with no header row is refused; a row
/// that cannot be read is kept, with the reason, so that it is reported and counted.
pub fn read(bytes: &[u8], options: &ReadOptions) -> DomainResult<Sheet> {
    let (text, encoding) = decode(bytes, options.charset.as_deref())?;
    let first_line = text.split(['\r', '\n']).next().unwrap_or("");
    if first_line.trim_matches([' ', '\t']).is_empty() {
        return Err(DomainError::invalid(
            "body",
            "needs a header row naming its columns on its first line",
        ));
    }
    let delimiter = options.delimiter.unwrap_or_else(|| Delimiter::sniff(&text));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter.byte())
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| {
            DomainError::invalid("body", format!("has a header row that cannot be read: {e}"))
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let bytes = text.as_bytes();
    // With CRLF line ends the csv crate places a record at the `\n` before it (and counts its
    // lines from there), so the line a person sees in an editor is counted here: skip the line
    // break the position may point at, then count the breaks before it, carrying the count
    // forward from the previous record so the whole file is scanned once.
    let mut counted = (0usize, 1i64);
    let mut line_at = |byte: u64| {
        let mut at = (byte as usize).min(bytes.len());
        while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
            at += 1;
        }
        let (from, line) = counted;
        let from = from.min(at);
        let line = line + bytes[from..at].iter().filter(|b| **b == b'\n').count() as i64;
        counted = (at, line);
        line
    };
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as i64 + 1;
        let (line, cells) = match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| line_at(p.byte()));
                if record.iter().all(str::is_empty) {
                    continue;
                }
                let cells = if record.len() > headers.len() {
                    Err(format!(
                        "has {} cells but the header has {}",
                        record.len(),
                        headers.len()
                    ))
                } else {
                    Ok(record.iter().map(|c| unescape(c).to_string()).collect())
                };
                (line, cells)
            }
            Err(e) => (
                e.position().map_or(0, |p| line_at(p.byte())),
                Err(format!("cannot be read: {e}")),
            ),
        };
        rows.push(SheetRow { row, line, cells });
    }
    Ok(Sheet {
        headers,
        rows,
        encoding,
        delimiter,
    })
}

/// A header as compared with the names a field is known by: letters and digits only, in lower
/// case, so `E-mail`, `Email Address`, `first_name` and `First Name` read as `email`,
/// `emailaddress`, `firstname` and `firstname`.
pub fn header_key(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as exported: one a spreadsheet would run as a formula gets a `'` in front, so
/// it shows as the text it is (OWASP's rule for CSV injection). Numbers are written as numbers
/// and never pass through here.
pub fn formula_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A cell as imported: the `'` [`formula_safe`] put in front is taken off again, so an export
/// imports back to the same text.
fn unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_separator_is_the_header_rows_first_outside_a_quoted_cell() {
        assert_eq!(Delimiter::sniff("a;b;c\n1,2;3"), Delimiter::Semicolon);
        assert_eq!(Delimiter::sniff("a\tb\n"), Delimiter::Tab);
        assert_eq!(Delimiter::sniff("\"a;\"\"b\",c\n"), Delimiter::Comma);
        assert_eq!(Delimiter::sniff("email\nx;y"), Delimiter::Comma);
        assert_eq!(Delimiter::sniff("a b;c,d\n"), Delimiter::Semicolon);
    }

    #[test]
    fn encodings_are_read_by_mark_declaration_or_fallback() {
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("é,x".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(
            decode(&utf16, None).unwrap(),
            (Cow::from("é,x"), "UTF-16LE")
        );
        assert_eq!(
            decode(b"caf\xe9", None).unwrap(),
            (Cow::from("café"), "windows-1252")
        );
        assert_eq!(
            decode(b"caf\xe9", Some("windows-1252")).unwrap().1,
            "windows-1252"
        );
        assert_eq!(decode("café".as_bytes(), None).unwrap().1, "UTF-8");
        assert!(decode(b"x", Some("klingon")).is_err());
    }

    #[test]
    fn formulas_are_neutralised_and_read_back() {
        for cell in ["=1+1", "+33 1 23", "-x", "@SUM(A1)", "\tx", "\rx"] {
            let safe = formula_safe(cell);
            assert!(safe.starts_with('\''), "{cell:?}");
            assert_eq!(unescape(&safe), cell);
        }
        assert_eq!(formula_safe("plain"), "plain");
        assert_eq!(unescape("'quoted"), "'quoted");
    }

    /// A CSV cell: any text, quoted as a spreadsheet would when it needs to be.
    fn cell(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_without_a_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let _ = read(&raw, &ReadOptions::default());
        }

        #[test]
        fn every_record_is_a_row_with_its_cells_back(
            rows in proptest::collection::vec((".{0,40}", ".{0,40}"), 1..40)
        ) {
            let mut csv = String::from("first_name,last_name\r\n");
            for (first, last) in &rows {
                csv.push_str(&format!("{},{}\r\n", cell(first), cell(last)));
            }
            let sheet = read(csv.as_bytes(), &ReadOptions::default()).unwrap();
            // Records whose cells are all blank (spreadsheets end with them) are not rows.
            let blank = |s: &str| s.trim().is_empty();
            let real: Vec<_> = rows.iter().filter(|(f, l)| !(blank(f) && blank(l))).collect();
            proptest::prop_assert_eq!(sheet.rows.len(), real.len());
            for (row, (first, last)) in sheet.rows.iter().zip(real) {
                let cells = row.cells.as_ref().unwrap();
                proptest::prop_assert_eq!(&cells[0], unescape(first.trim()));
                proptest::prop_assert_eq!(&cells[1], unescape(last.trim()));
            }
        }
    }

    #[test]
    fn headers_compare_by_letters_and_digits() {
        assert_eq!(header_key(" E-mail "), "email");
        assert_eq!(header_key("Email Address"), "emailaddress");
        assert_eq!(header_key("\u{feff}first_name"), "firstname");
        assert_eq!(header_key("Country/Region"), "countryregion");
    }
}
