//! Reading the officer's candidate list: Excel's CSV in UTF-8 (with or without BOM)
//! or GBK, with the columns found by their Chinese or English headers.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{bail, Context};

use super::{BOM, MAX_CANDIDATES};
use crate::proto::v1 as pb;

/// Headers (trimmed, lower-cased) recognised for each column.
// Each in priority order: the most specific header first, the generic last (a column
// headed 企业 may hold names where one headed 统一社会信用代码 holds the codes).
const NAME_HEADERS: &[&str] = &["姓名", "name"];
const ID_HEADERS: &[&str] = &["身份证号", "身份证号码", "公民身份号码", "id_number", "id"];
const DECLARED_HEADERS: &[&str] = &[
    "申报企业",
    "统一社会信用代码",
    "declared_enterprises",
    "企业",
];

/// One candidate as read from the file.
#[derive(Clone, PartialEq, Eq)]
pub struct CandidateRow {
    /// Line of the file the candidate starts on (the header is line 1), so an officer
    /// can find the row in Excel.
    pub line: u64,
    /// Name as written, trimmed.
    pub name: String,
    /// ID number as written, trimmed; deliberately not validated here (the service marks
    /// a malformed one INVALID without failing the whole list).
    pub id_number: String,
    /// USCCs the candidate declares, as written.
    pub declared_enterprises: Vec<String>,
}

// Hand-written so that a `{:?}` someone adds later cannot print a full ID number.
impl std::fmt::Debug for CandidateRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateRow")
            .field("line", &self.line)
            .field("name", &self.name)
            .field("id_number", &"[REDACTED]")
            .field("declared_enterprises", &self.declared_enterprises)
            .finish()
    }
}

impl CandidateRow {
    pub(super) fn to_proto(&self) -> pb::Candidate {
        pb::Candidate {
            name: self.name.clone(),
            id_number: self.id_number.clone(),
            declared_enterprises: self.declared_enterprises.clone(),
        }
    }
}

/// Reads and parses a candidate file; errors name the file, never a candidate's ID.
pub fn load_candidates(path: &Path) -> anyhow::Result<Vec<CandidateRow>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = decode_text(&bytes).with_context(|| format!("cannot decode {}", path.display()))?;
    let rows = parse_candidates(&text)
        .with_context(|| format!("cannot read candidates from {}", path.display()))?;
    if rows.is_empty() {
        bail!("{} lists no candidates", path.display());
    }
    if rows.len() > MAX_CANDIDATES {
        bail!(
            "{} lists {} candidates; one check takes at most {MAX_CANDIDATES}: split the list",
            path.display(),
            rows.len()
        );
    }
    Ok(rows)
}

/// The text of a CSV file as Excel may have saved it: UTF-8 with or without a BOM, else
/// GBK (Excel's "CSV (逗号分隔)" on Chinese Windows).
///
/// Some GBK text is valid UTF-8 too (谢伟 and 叶平 read as Cyrillic), so a file without a
/// BOM that reads as UTF-8 but not as a Chinese list would (letters no name list holds)
/// is read as GBK when that reads as one. A file that begins with the UTF-8 BOM must be
/// UTF-8 throughout.
pub fn decode_text(bytes: &[u8]) -> anyhow::Result<Cow<'_, str>> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        bail!("the file is UTF-16 (Excel's \"Unicode text\"); save it as \"CSV UTF-8\" instead");
    }
    if let Some(rest) = bytes.strip_prefix(BOM) {
        return std::str::from_utf8(rest).map(Cow::Borrowed).map_err(|e| {
            anyhow::anyhow!(
                "the file begins as UTF-8 but byte {} is not UTF-8; save it again as \"CSV UTF-8\"",
                e.valid_up_to() + BOM.len()
            )
        });
    }
    let gbk = || encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) if looks_chinese(text) => Ok(Cow::Borrowed(text)),
        Ok(text) => Ok(gbk()
            .filter(|t| looks_chinese(t))
            .unwrap_or(Cow::Borrowed(text))),
        Err(_) => gbk().context("the file is neither UTF-8 nor GBK text; save it as \"CSV UTF-8\""),
    }
}

/// Whether every character of `text` is one a Chinese candidate list holds: ASCII, Han
/// characters, CJK and full-width punctuation and forms, general punctuation, and the
/// middle dot of transliterated names.
fn looks_chinese(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_ascii()
            || matches!(c,
                '\u{00B7}'
                | '\u{2000}'..='\u{206F}'
                | '\u{3000}'..='\u{303F}'
                | '\u{3400}'..='\u{4DBF}'
                | '\u{4E00}'..='\u{9FFF}'
                | '\u{F900}'..='\u{FAFF}'
                | '\u{FF00}'..='\u{FFEF}'
                | '\u{20000}'..='\u{3FFFF}')
    })
}

/// Where the columns are, found by their headers.
struct Columns {
    name: usize,
    id: usize,
    declared: Option<usize>,
}

impl Columns {
    fn find(headers: &csv::StringRecord) -> anyhow::Result<Self> {
        // By the aliases' order, not the columns': with a row-number column headed
        // "ID" before one headed 身份证号, the ID numbers are in the second.
        let find = |names: &[&str]| {
            names.iter().find_map(|alias| {
                headers
                    .iter()
                    .position(|h| h.trim().to_lowercase() == *alias)
            })
        };
        let (name, id) = (find(NAME_HEADERS), find(ID_HEADERS));
        if let (Some(name), Some(id)) = (name, id) {
            return Ok(Columns {
                name,
                id,
                declared: find(DECLARED_HEADERS),
            });
        }
        let mut missing = Vec::new();
        if name.is_none() {
            missing.push(NAME_HEADERS.join("/"));
        }
        if id.is_none() {
            missing.push(ID_HEADERS.join("/"));
        }
        // A file without a header row starts with a candidate: say so rather than list
        // the "columns", which would be a person's name and ID number.
        // Full-width digits count: Chinese input methods type them.
        let looks_like_id = |h: &str| {
            h.chars().filter(|c| c.is_numeric()).count() >= 15
                || crate::domain::id_scan::contains_id_number(h)
        };
        if headers.iter().any(looks_like_id) {
            bail!(
                "the first row looks like a candidate, not a header; add a header row with the columns {}",
                missing.join(" and ")
            );
        }
        let found: Vec<_> = headers.iter().map(|h| format!("{:?}", h.trim())).collect();
        bail!(
            "no column {} in the header row; columns found: {}",
            missing.join(" and no column "),
            found.join(", ")
        )
    }
}

/// Parses CSV text with a header row into candidates, skipping empty rows.
pub fn parse_candidates(text: &str) -> anyhow::Result<Vec<CandidateRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(sniff_delimiter(text))
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("cannot read the header row")?
        .clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        bail!("no header row (e.g. 姓名,身份证号,申报企业)");
    }
    let columns = Columns::find(&headers)?;
    let mut lines = LineCounter::new(text);
    let mut rows = Vec::new();
    for record in reader.records() {
        // csv's messages give positions, never field contents.
        let record = record.context("not a readable CSV file")?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        rows.push(CandidateRow {
            line: record.position().map_or(0, |p| lines.line_at(p.byte())),
            name: cell(columns.name).to_string(),
            id_number: cell(columns.id).to_string(),
            declared_enterprises: columns
                .declared
                .map(|i| split_declared(cell(i)))
                .unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// File line numbers of rows, from their byte offsets. csv's own `Position::line` is one
/// short after CRLF line ends (Excel's): it places a row's start before the `\n` that ends
/// the previous row.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line of the row starting at `byte`; rows must be asked for in file order.
    fn line_at(&mut self, byte: u64) -> u64 {
        let byte = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        let skipped = self.text[byte..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let start = (byte + skipped).max(self.offset);
        let breaks = self.text[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line += breaks as u64;
        self.offset = start;
        self.line
    }
}

/// Tab when the header line has tabs and no commas (Excel's "text" export), else comma.
fn sniff_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.contains('\t') && !header.contains(',') {
        b'\t'
    } else {
        b','
    }
}

/// The USCCs in a declared-enterprises cell: officers separate them with whatever their
/// keyboard gives (; ； 、 , ， or spaces, also line breaks inside the cell).
pub fn split_declared(cell: &str) -> Vec<String> {
    cell.split(|c: char| matches!(c, ';' | '；' | '、' | ',' | '，') || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 谢伟 in GBK is D0BB CEB0, which is valid UTF-8 too ("лΰ"); with English headers
    /// nothing else in the file tells the encodings apart.
    #[test]
    fn a_gbk_file_that_is_also_valid_utf8_is_read_as_gbk() {
        let (gbk, _, _) = encoding_rs::GBK.encode("name,id\n谢伟,x\n叶平,y\n");
        assert!(std::str::from_utf8(&gbk).is_ok(), "the case this guards");
        assert_eq!(decode_text(&gbk).unwrap(), "name,id\n谢伟,x\n叶平,y\n");
        // UTF-8 text stays UTF-8, a middle dot included.
        let utf8 = "name,id\n阿依古丽·买买提,x\n".as_bytes();
        assert_eq!(decode_text(utf8).unwrap(), "name,id\n阿依古丽·买买提,x\n");
        // A BOM promises UTF-8 throughout.
        let mut broken = BOM.to_vec();
        broken.extend_from_slice(&gbk);
        broken.extend_from_slice(b"\xFF");
        assert!(decode_text(&broken).is_err());
    }

    // The standard's documented example, and two synthetic numbers on the address codes
    // 990101/990102, which belong to no region (so to no one), with check characters
    // computed under GB 11643; the tests below assert none of them reaches any output.
    const ID_A: &str = "11010519491231002X";
    const ID_B: &str = "990101198001010014";
    const ID_C: &str = "990102199912310019";

    fn list() -> String {
        format!(
            "序号,姓名,身份证号码,申报企业\n1,张三,{ID_A},914403001922038216；91440300708461136T\n,,,\n2,李四,{ID_B},\n3,王五,{ID_C},91330100716105852F 、914403001922038216\n"
        )
    }

    #[test]
    fn gbk_and_utf8_with_bom_give_the_same_candidates() {
        let text = list();
        let (gbk, _, had_errors) = encoding_rs::GBK.encode(&text);
        assert!(!had_errors);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "test data must not be UTF-8"
        );
        let mut utf8 = BOM.to_vec();
        utf8.extend_from_slice(text.as_bytes());

        let from_gbk = parse_candidates(&decode_text(&gbk).unwrap()).unwrap();
        let from_utf8 = parse_candidates(&decode_text(&utf8).unwrap()).unwrap();
        let plain = parse_candidates(&decode_text(text.as_bytes()).unwrap()).unwrap();

        assert_eq!(from_gbk, from_utf8);
        assert_eq!(from_utf8, plain);
        assert_eq!(from_utf8.len(), 3, "the empty row is skipped");
        assert_eq!(from_utf8[0].name, "张三");
        assert_eq!(from_utf8[0].id_number, ID_A);
        assert_eq!(
            from_utf8[1].line, 4,
            "lines count the header and the empty row"
        );
    }

    #[test]
    fn lines_are_counted_as_excel_numbers_rows() {
        let text =
            format!("姓名,身份证号\r\n张三,{ID_A}\r\n\r\n,\r\n\"李\r\n四\",{ID_B}\r\n王五,{ID_C}");
        let lines: Vec<_> = parse_candidates(&text)
            .unwrap()
            .iter()
            .map(|r| r.line)
            .collect();
        assert_eq!(lines, [2, 5, 7]);
        let lf = text.replace("\r\n", "\n");
        let lines: Vec<_> = parse_candidates(&lf)
            .unwrap()
            .iter()
            .map(|r| r.line)
            .collect();
        assert_eq!(lines, [2, 5, 7]);
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        assert!(decode_text(b"\xFF\xFF\xFF").is_err());
        assert!(decode_text(b"\xFF\xFEn\0a\0").is_err());
    }

    #[test]
    fn declared_enterprises_split_on_every_separator() {
        let got = split_declared(" A1;A2；A3、A4,A5，A6 A7\tA8\nA9　A10 ;; ");
        let want: Vec<String> = (1..=10).map(|i| format!("A{i}")).collect();
        assert_eq!(got, want);
        assert!(split_declared("").is_empty());
    }

    #[test]
    fn headers_are_matched_trimmed_and_case_insensitively() {
        let rows = parse_candidates(&format!(
            " Name , ID ,Declared_Enterprises\nZhang San,{ID_A},\n"
        ))
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "Zhang San");
        assert_eq!(rows[0].id_number, ID_A);
        assert!(rows[0].declared_enterprises.is_empty());
    }

    #[test]
    fn a_row_number_column_headed_id_does_not_hide_the_id_numbers() {
        let rows = parse_candidates(&format!("ID,姓名,身份证号\n1,张三,{ID_A}\n")).unwrap();
        assert_eq!(rows[0].id_number, ID_A);
        assert_eq!(rows[0].name, "张三");
    }

    #[test]
    fn ids_are_passed_on_unvalidated() {
        let rows = parse_candidates("姓名,身份证号\n张三,12345\n李四,\n").unwrap();
        assert_eq!(rows[0].id_number, "12345");
        assert_eq!(rows[1].id_number, "");
    }

    #[test]
    fn a_first_row_holding_an_id_number_is_never_echoed() {
        for first in [
            "张三,11010519491231002X",
            "张三,１１０１０５１９４９１２３１００２Ｘ",
            "张三 11010519491231002X",
        ] {
            let err = parse_candidates(&format!("{first}\n李四,x\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("looks like a candidate"), "{err}");
            assert!(!err.contains("张三"), "{err}");
        }
    }

    #[test]
    fn a_missing_column_is_named_with_the_columns_found() {
        let err = parse_candidates("序号,名字,身份证号\n1,张三,x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("姓名/name"), "{err}");
        assert!(err.contains("\"序号\", \"名字\", \"身份证号\""), "{err}");
        assert!(
            !err.contains("公民身份号码"),
            "the ID column was found: {err}"
        );
    }

    #[test]
    fn a_file_without_header_is_refused_without_echoing_the_id() {
        let err = parse_candidates(&format!("张三,{ID_A}\n李四,{ID_B}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("header"), "{err}");
        assert!(!err.contains(ID_A), "{err}");
    }

    #[test]
    fn tab_separated_text_is_read() {
        let rows = parse_candidates(&format!("姓名\t身份证号\n张三\t{ID_A}\n")).unwrap();
        assert_eq!(rows[0].id_number, ID_A);
    }

    #[test]
    fn candidate_debug_hides_the_id() {
        let rows = parse_candidates(&list()).unwrap();
        assert!(!format!("{rows:?}").contains(ID_A));
    }

    #[test]
    fn too_many_candidates_are_refused_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut text = String::from("姓名,身份证号\n");
        for i in 0..=MAX_CANDIDATES {
            text.push_str(&format!("人{i},{i}\n"));
        }
        std::fs::write(&path, text).unwrap();
        let err = load_candidates(&path).unwrap_err().to_string();
        assert!(err.contains("10001 candidates"), "{err}");
    }
}
