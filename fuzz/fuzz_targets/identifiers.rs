//! Identifier parsers on arbitrary text: never panic; what parses prints back the same
//! and parses again to the same value; a masked ID hides the birth date.
#![no_main]

use credit_hub::domain::ids::{IdNumber, Uscc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(u) = Uscc::parse(text) {
        assert_eq!(Uscc::parse(u.as_str()).ok().as_ref(), Some(&u));
        assert_eq!(u.as_str().len(), 18);
    }
    if let Ok(id) = IdNumber::parse(text) {
        let masked = id.masked();
        assert_eq!(masked.as_str().chars().count(), 18);
        assert_eq!(masked.as_str().chars().filter(|c| *c == '*').count(), 8, "the birth date is masked");
    }
    let _ = credit_hub::api::convert::enterprise_name("name", text);
    let _ = credit_hub::api::convert::resource_id("name", "records", text);
});
