//! Finding resident ID numbers written inside free text (a summary, a name, a reason),
//! so that the API can refuse them and a refused value can be echoed masked: the
//! database must not hold one full ID number, and a clerk who types one into a
//! record's summary must hear so rather than have it stored.

use std::ops::Range;

use super::ids::{IdNumber, Uscc};

/// A run of digits and, directly after it, an optional `X`: the shape an ID number
/// has on paper. `text` is its normalised form (ASCII digits, capital `X`), `bytes` its
/// place in the original text.
struct Run {
    bytes: Range<usize>,
    text: String,
}

/// The ASCII digit or `X` a character stands for: full-width forms count, as Chinese
/// input methods type them.
fn id_char(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
        'x' | 'X' | 'ｘ' | 'Ｘ' => Some('X'),
        _ => None,
    }
}

/// Whether `c` is drawn as nothing: Unicode's default-ignorable code points (zero-width
/// spaces and joiners, the soft hyphen, word joiners and invisible operators, variation
/// selectors, bidirectional marks, tags), the other format characters and the control
/// characters that are not spaces (DEL, C0 and C1 codes). Copying from documents leaves
/// them between digits, and a reader sees the digits as one number, so the scan looks
/// through them, however many there are.
pub fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    ) || (c.is_control() && !c.is_whitespace())
}

/// Whether `c` may stand between the groups of an ID number written in parts: any space
/// (full-width and no-break ones included; [`invisible`] characters do not count at
/// all). Not dashes, dots or slashes: document and
/// registration numbers are written with them (`371002-20240512-0004`), and one in
/// eleven such would pass an ID number's checks (that one does) and be refused, or
/// masked where it is shown. Read `loosely`, for names, which hold no such numbers,
/// they join groups too.
fn joiner(c: char, loosely: bool) -> bool {
    c.is_whitespace()
        || (loosely
            && matches!(
                c,
                '-' | '\u{2010}'..='\u{2015}' | '－' | '.' | '．' | '·' | '/' | '／' | '_'
            ))
}

/// Most joiner characters between two groups of one ID number.
const MAX_JOINERS: usize = 3;

/// How a scan reads [`invisible`] characters. Between two digits one may join the
/// groups of an ID number (`110105\u{AD}19491231002X`) or part it from a number beside
/// it (`1\u{200B}11010519491231002X`, a row number before it): a scan reads the text
/// both ways, and whatever either finds counts.
#[derive(Clone, Copy)]
enum Invisibles {
    /// Passed over, as if absent: digits on either side are one run.
    Through,
    /// Each ends a run, joining it to the next as a space would, but without counting
    /// towards [`MAX_JOINERS`].
    Between,
}

/// The digit runs of `text`, each with the `X` that directly follows it, if any, and
/// whether a few [`joiner`]s join it to the next run (IDs are often written in groups).
fn runs(text: &str, loosely: bool, invisibles: Invisibles) -> Vec<(Run, bool)> {
    let through = matches!(invisibles, Invisibles::Through);
    let mut out: Vec<(Run, bool)> = Vec::new();
    let mut current: Option<Run> = None;
    let mut chars = text
        .char_indices()
        .filter(|&(_, c)| !(through && invisible(c)))
        .peekable();
    while let Some((at, c)) = chars.next() {
        let end = at + c.len_utf8();
        match (id_char(c), current.as_mut()) {
            (Some('X'), Some(run)) if !run.text.ends_with('X') => {
                run.text.push('X');
                run.bytes.end = end;
            }
            // An X ends a run; one that starts text ("Xu") is a letter.
            (Some('X'), _) => {
                if let Some(run) = current.take() {
                    out.push((run, false));
                }
            }
            (Some(d), Some(run)) if !run.text.ends_with('X') => {
                run.text.push(d);
                run.bytes.end = end;
            }
            (Some(d), _) => {
                if let Some(run) = current.take() {
                    out.push((run, false));
                }
                current = Some(Run {
                    bytes: at..end,
                    text: d.to_string(),
                });
            }
            (None, _) => {
                if let Some(run) = current.take() {
                    let mut joined = joiner(c, loosely) || invisible(c);
                    let mut joiners = usize::from(!invisible(c));
                    while joined {
                        match chars.peek() {
                            Some((_, next)) if invisible(*next) => {
                                chars.next();
                            }
                            Some((_, next)) if joiner(*next, loosely) && joiners < MAX_JOINERS => {
                                joiners += 1;
                                chars.next();
                            }
                            Some((_, next)) => {
                                joined = id_char(*next).is_some_and(|n| n != 'X');
                                break;
                            }
                            None => joined = false,
                        }
                    }
                    out.push((run, joined));
                }
            }
        }
    }
    if let Some(run) = current {
        out.push((run, false));
    }
    out
}

/// Whether `candidate` (18 normalised characters) is someone's ID number: both of its
/// checks pass and its birth year is before 2100. A market entity's code that happens
/// to pass them too (see [`Uscc::parse`]) is not one.
fn is_id_number(candidate: &str) -> bool {
    IdNumber::parse(candidate).is_ok_and(|id| chrono::Datelike::year(&id.birth_date()) < 2100)
        && Uscc::parse(candidate).is_err()
}

/// Whether `candidate` (15 digits standing alone) is a first-generation ID number
/// (GB 11643-1989: address code, `YYMMDD` birth date in the 1900s, sequence; no check
/// character): its address code names a province and its date is real. An old
/// 15-digit business registration number passing its ISO 7064 MOD 11,10 check is not
/// one (nine in ten old ID numbers fail that check, and one registration number in
/// thirty would otherwise read as a birth date).
fn is_first_generation_id(candidate: &str) -> bool {
    const PROVINCES: [std::ops::RangeInclusive<u32>; 9] = [
        11..=15,
        21..=23,
        31..=37,
        41..=46,
        50..=54,
        61..=65,
        71..=71,
        81..=82,
        91..=91,
    ];
    let bytes = candidate.as_bytes();
    if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = |r: Range<usize>| candidate[r].parse::<u32>().unwrap_or(0);
    let province = number(0..2);
    let (year, month, day) = (number(6..8), number(8..10), number(10..12));
    PROVINCES.iter().any(|p| p.contains(&province))
        && chrono::NaiveDate::from_ymd_opt(1900 + year as i32, month, day).is_some()
        && !passes_mod_11_10(bytes)
}

/// Whether `digits` (ASCII) pass ISO 7064 MOD 11,10, the check of an old business
/// registration number's last digit.
fn passes_mod_11_10(digits: &[u8]) -> bool {
    let (body, check) = digits.split_at(digits.len() - 1);
    let mut p = 10;
    for d in body {
        let mut s = (p + u32::from(d - b'0')) % 10;
        if s == 0 {
            s = 10;
        }
        p = (s * 2) % 11;
    }
    (p + u32::from(check[0] - b'0')) % 10 == 1
}

/// Where `text` holds a resident ID number: byte ranges, in order, not overlapping.
/// An ID counts whether written in one piece, in groups separated by spaces or
/// zero-width characters (see [`joiner`]), or in full-width characters; a run of more
/// than 18 digits is some other number. A first-generation (15-digit) number counts
/// where it stands alone (see [`is_first_generation_id`]).
pub fn id_numbers_in(text: &str) -> Vec<Range<usize>> {
    find(text, false)
}

/// Where [`id_numbers_in`] finds one, or [`joiner`] read loosely joins groups into one:
/// what a scan finds reading [`Invisibles`] either way, overlapping finds merged.
fn find(text: &str, loosely: bool) -> Vec<Range<usize>> {
    let mut found = find_in(text, &runs(text, loosely, Invisibles::Through));
    // Without invisible characters both readings are one: most text is read once.
    if !text.chars().any(invisible) {
        return found;
    }
    found.extend(find_in(text, &runs(text, loosely, Invisibles::Between)));
    found.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
    for range in found {
        match merged.last_mut() {
            Some(last) if range.start < last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Where runs, alone or joined, make an ID number.
fn find_in(text: &str, runs: &[(Run, bool)]) -> Vec<Range<usize>> {
    // Whether a letter or digit touches the bytes `at` (a hex digest, a code).
    let touched = |at: Range<usize>| {
        let before = text[..at.start].chars().next_back();
        let after = text[at.end..].chars().next();
        [before, after]
            .into_iter()
            .flatten()
            .any(|c| c.is_ascii_alphanumeric())
    };
    let mut found: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        // Runs i..=j joined by single spaces, as long as they add up to at most 18.
        let mut candidate = String::new();
        let mut hit = None;
        let follows_digits = i > 0 && runs[i - 1].1;
        for (j, (run, joined)) in runs[i..].iter().enumerate() {
            candidate.push_str(&run.text);
            if candidate.len() >= 18 || !joined {
                let id = match candidate.len() {
                    18 => is_id_number(&candidate),
                    // An old number only where it stands alone: joined to more digits
                    // on either side, or touching letters, fifteen digits are more
                    // likely part of some longer number or code.
                    15 => {
                        !joined
                            && !follows_digits
                            && !touched(runs[i].0.bytes.start..run.bytes.end)
                            && is_first_generation_id(&candidate)
                    }
                    _ => false,
                };
                if id {
                    hit = Some(i + j);
                }
                break;
            }
        }
        match hit {
            Some(last) => {
                found.push(runs[i].0.bytes.start..runs[last].0.bytes.end);
                i = last + 1;
            }
            None => i += 1,
        }
    }
    found
}

/// Whether `text` holds a resident ID number anywhere.
///
/// Current (18-character) numbers only: identifiers partners choose (request ids,
/// source record ids, document numbers) are often a region code, a date and a
/// sequence, the shape of a first-generation number, and refusing one would refuse the
/// retry of a write already accepted. Prose is checked for those too, with
/// [`contains_old_id_number`].
pub fn contains_id_number(text: &str) -> bool {
    id_numbers_in(text)
        .into_iter()
        .any(|r| text[r].chars().filter_map(id_char).count() == 18)
}

/// Whether `text` holds a first-generation (15-digit) ID number standing alone: the
/// check for prose (a summary, a reason), where such a number is far likelier someone's
/// than in an identifier.
pub fn contains_old_id_number(text: &str) -> bool {
    id_numbers_in(text)
        .into_iter()
        .any(|r| text[r].chars().filter_map(id_char).count() == 15)
}

/// Whether `text` holds a resident ID number, its groups also joined by dashes, dots,
/// slashes or underscores: the check for names, which hold no document numbers.
pub fn contains_id_number_loosely(text: &str) -> bool {
    !find(text, true).is_empty()
}

/// Where `text` holds a number of 15 or more digits, its groups joined as
/// [`contains_id_number_loosely`] joins them: byte ranges with the digits (`X` too).
fn long_numbers_in(text: &str) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    let mut group: Option<(Range<usize>, String)> = None;
    for (run, joined) in runs(text, true, Invisibles::Through) {
        let (bytes, digits) = group.get_or_insert_with(|| (run.bytes.clone(), String::new()));
        bytes.end = run.bytes.end;
        digits.push_str(&run.text);
        if !joined {
            let (bytes, digits) = group.take().expect("just filled");
            if digits.trim_end_matches('X').len() >= 15 {
                found.push((bytes, digits));
            }
        }
    }
    found
}

/// Whether `text` holds a number of 15 or more digits (see [`long_numbers_in`]): the
/// check for names, which hold no such number, while an ID number with one digit
/// mistyped (its check fails) or an old 15-digit one would still give the person's
/// birth date and most of the number away.
pub fn contains_long_number(text: &str) -> bool {
    !long_numbers_in(text).is_empty()
}

/// `text` with every ID number masked (see [`mask_id_numbers_loosely`]), and every
/// other number of 15 or more digits too, keeping its first six and last four: for
/// echoing a refused name.
pub fn mask_long_numbers(text: &str) -> String {
    let text = mask_id_numbers_loosely(text);
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (bytes, digits) in long_numbers_in(&text) {
        out.push_str(&text[from..bytes.start]);
        let n = digits.chars().count();
        out.extend(digits.chars().take(6));
        out.extend(std::iter::repeat_n('*', n - 10));
        out.extend(digits.chars().skip(n - 4));
        from = bytes.end;
    }
    out.push_str(&text[from..]);
    out
}

/// `text` with every ID number in it masked as [`IdNumber::masked`] shows one (address
/// code and last four characters), for echoing a value that was refused.
pub fn mask_id_numbers(text: &str) -> String {
    mask(text, false)
}

/// `text` quoted for an error message: any ID number masked first (as
/// [`mask_id_numbers_loosely`] does), then escaped as Rust's `Debug` escapes strings, so
/// that control characters are shown rather than sent, and cannot split a number the
/// masking would have found.
pub fn quoted(text: &str) -> String {
    format!("{:?}", mask_id_numbers_loosely(text))
}

/// [`mask_id_numbers`] for a name, reading [`joiner`] loosely.
pub fn mask_id_numbers_loosely(text: &str) -> String {
    mask(text, true)
}

fn mask(text: &str, loosely: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for range in find(text, loosely) {
        out.push_str(&text[from..range.start]);
        let normalised: String = text[range.clone()].chars().filter_map(id_char).collect();
        let masked = match IdNumber::parse(&normalised) {
            Ok(id) => id.masked().as_str().to_string(),
            // A first-generation number: its address code and last four, as for a
            // current one.
            Err(_) if normalised.len() == 15 => {
                format!("{}******{}", &normalised[..6], &normalised[12..])
            }
            Err(_) => "*".repeat(18),
        };
        out.push_str(&masked);
        from = range.end;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB 11643's documented example number (the tests' `ID_A`), not a person's.
    const ID: &str = "11010519491231002X";

    #[test]
    fn an_id_number_is_found_however_it_is_written() {
        // One that ends in a digit, to stand beside another number.
        let digit_ended = (0..10)
            .map(|n| format!("1101051949123100{n}"))
            .map(|d| format!("{d}{}", IdNumber::check_char(d.as_bytes())))
            .find(|id| !id.ends_with('X'))
            .expect("some check digit is a digit");
        for text in [
            ID.to_string(),
            format!("被执行人王五（身份证号{ID}）拒不履行"),
            format!("Alex{ID}"),
            format!("{}x", &ID[..17]),
            "110105 19491231 002X".to_string(),
            "110105　19491231　002X".to_string(),
            "110105  19491231002X".to_string(),
            "110105\u{a0}19491231\u{200b}002X".to_string(),
            // Invisible characters, however many, join groups or part an ID number
            // from a number beside it.
            format!("1\u{200b}{ID}"),
            format!("{digit_ended}\u{200e}2024"),
            format!("{digit_ended}\u{ad}\u{ad}\u{ad}\u{ad} 7"),
            "11010519491231\u{ad}002X".to_string(),
            "110105\u{200b}\u{200b}\u{200b}\u{200b}19491231002X".to_string(),
            "1\u{2061}1\u{fe0f}0105\u{180e}19491231\u{e0041}002\u{2063}X".to_string(),
            "110105 \u{200b}\u{200c}\u{200d}\u{2060}\u{feff} 19491231002X".to_string(),
            "１１０１０５１９４９１２３１００２Ｘ".to_string(),
            format!("张三,{ID},李四"),
        ] {
            assert!(contains_id_number(&text), "{text}");
        }
    }

    #[test]
    fn names_and_masking_join_groups_by_dashes_dots_and_slashes_too() {
        for text in [
            "110105-19491231-002X",
            "110105.19491231.002X",
            "110105/19491231/002X",
            "王五－１１０１０５－１９４９１２３１－００２Ｘ",
        ] {
            assert!(
                !contains_id_number(text),
                "free text keeps dashed numbers: {text}"
            );
            assert!(contains_id_number_loosely(text), "{text}");
            assert!(!mask_id_numbers_loosely(text).contains("1231"), "{text}");
        }
        assert!(!contains_id_number_loosely("(2024)京0105执1234号"));
        // A document number that passes an ID number's checks once its dashes join it
        // is shown as it is wherever it is not a name.
        let document = "371002-20240512-0004";
        assert!(contains_id_number_loosely(document));
        assert_eq!(mask_id_numbers(document), document);
    }

    #[test]
    fn other_numbers_are_not_id_numbers() {
        for text in [
            // The check character changed (to a letter, to another digit): not a number
            // anyone holds.
            format!("{}Y {}1", &ID[..17], &ID[..17]),
            // Longer runs are other numbers (a bank card), shorter ones too.
            format!("6{ID}"),
            "(2024)京0105执1234号".to_string(),
            "110105194912310".to_string(),
            // Groups too far apart to be one number.
            "110105    19491231002X".to_string(),
            "110105 号 19491231002X".to_string(),
            // Dashes join document numbers, not ID numbers.
            "371002-20240512-0004".to_string(),
            "110105-19491231-002X".to_string(),
            String::new(),
        ] {
            assert!(!contains_id_number(&text), "{text}");
        }
    }

    #[test]
    fn a_first_generation_number_standing_alone_is_an_id_number() {
        // GB 11643's example in its 15-digit form, with a sequence whose last digit
        // fails ISO 7064 MOD 11,10 (the example's own, 002, passes it).
        let old = "110105491231001";
        for text in [
            old.to_string(),
            format!("被执行人王五（身份证号{old}）"),
            "110105 491231 001".to_string(),
            "１１０１０５４９１２３１００１".to_string(),
        ] {
            assert!(contains_old_id_number(&text), "{text}");
            // Identifiers are checked for current numbers only.
            assert!(!contains_id_number(&text), "{text}");
        }
        assert_eq!(
            mask_id_numbers(&format!("王五 {old} 拒不履行")),
            "王五 110105******001 拒不履行"
        );
        for text in [
            // An old registration number: its MOD 11,10 check passes.
            "注册号110105491231002",
            // No such date, no such province, part of a longer number or of a code.
            "110105491331001",
            "990105491231001",
            "110105491231001 23",
            "6 110105491231001",
            "6110105491231001",
            "ab110105491231001",
            "110105491231001cd",
        ] {
            assert!(!contains_old_id_number(text), "{text}");
        }
    }

    #[test]
    fn quoting_masks_before_it_escapes() {
        assert_eq!(quoted("110105\t19491231002X"), "\"110105********002X\"");
        assert_eq!(quoted("a\u{7}b"), "\"a\\u{7}b\"");
    }

    #[test]
    fn control_characters_hide_no_id_number() {
        for text in [
            "110105\u{7f}19491231002X",
            "110105\u{1}19491231002X",
            "110105\u{85}\u{9f}19491231002X",
        ] {
            assert!(contains_id_number(text), "{text:?}");
            assert!(!mask_long_numbers(text).contains("1231002"), "{text:?}");
        }
    }

    #[test]
    fn a_market_entity_code_that_reads_as_an_id_number_stays_free_text() {
        let code = (1950..2000)
            .flat_map(|year| (0..100).map(move |n| format!("911101{year}0101{n:02}")))
            .filter_map(|prefix| Uscc::complete(&prefix))
            .find(|code| IdNumber::parse(code.as_str()).is_ok())
            .expect("some enterprise code passes the ID checks");
        assert!(!contains_id_number(&format!("当事人{}", code.as_str())));
    }

    #[test]
    fn masking_keeps_the_rest_of_the_text() {
        assert_eq!(
            mask_id_numbers(&format!("王五 {ID} 拒不履行")),
            "王五 110105********002X 拒不履行"
        );
        assert_eq!(
            mask_id_numbers("甲１１０１０５１９４９１２３１００２Ｘ乙"),
            "甲110105********002X乙"
        );
        assert_eq!(mask_id_numbers("no number"), "no number");
        assert_eq!(
            mask_id_numbers("王五 11010519491231\u{ad}002X 拒不履行"),
            "王五 110105********002X 拒不履行"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_valid_id_number_is_found_in_any_surrounding_text(
            prefix in "[a-w\\u{4e00}-\\u{4e10} ,]{0,8}",
            suffix in "[a-w\\u{4e00}-\\u{4e10} ,]{0,8}",
            body in 0u32..1_000_000,
        ) {
            let digits = format!("110105{:04}0101{:03}", 1950 + body % 70, body % 1000);
            let id = format!("{digits}{}", IdNumber::check_char(digits.as_bytes()));
            let text = format!("{prefix}{id}{suffix}");
            proptest::prop_assert!(contains_id_number(&text), "{}", text);
            proptest::prop_assert!(!mask_id_numbers(&text).contains(&id));
        }
    }

    proptest::proptest! {
        /// Whatever stands between and around the digits (invisible characters,
        /// spaces, dashes, letters, CJK), masking leaves no ID number behind, and
        /// never cuts a character.
        #[test]
        fn masking_leaves_no_id_number_in_any_text(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(ID.to_string()),
                    "[0-9X]{1,6}",
                    "[ \u{ad}\u{200b}\u{200e}\u{2063}\u{fe0f}\u{3000}.·王-]{1,3}",
                ],
                0..12,
            ),
        ) {
            let text: String = parts.concat();
            let masked = mask_id_numbers(&text);
            proptest::prop_assert!(!contains_id_number(&masked), "{:?} -> {:?}", text, masked);
            let loosely = mask_long_numbers(&text);
            proptest::prop_assert!(!contains_id_number_loosely(&loosely), "{:?} -> {:?}", text, loosely);
        }
    }

    #[test]
    fn names_hold_no_long_numbers() {
        // A synthetic number (990101 is no region) with its check character mistyped:
        // no ID number, but most of one.
        assert!(!contains_id_number_loosely("990101198001010015"));
        assert!(contains_long_number("990101198001010015"));
        assert!(contains_long_number("张三 990101-1980-0101-001"));
        assert!(
            contains_long_number("９９０１０１８００１０１００１"),
            "a 15-digit number, full width"
        );
        assert!(!contains_long_number("第12345678901234号"), "14 digits");
        assert!(!contains_long_number("张三 12345 李四 1234567890"));
        assert_eq!(
            mask_long_numbers("王五990101198001010015"),
            "王五990101********0015"
        );
        assert_eq!(
            mask_long_numbers("王五 990101-1980-0101-0015 号"),
            "王五 990101********0015 号"
        );
        assert_eq!(mask_long_numbers("李四 12345"), "李四 12345");
    }
}
