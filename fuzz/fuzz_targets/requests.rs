//! Request decoding and validation on arbitrary bytes: the first byte picks a request
//! type, the rest is decoded as that message and put through the same checks the
//! handlers run. Nothing may panic, whatever the bytes.
#![no_main]

use credit_hub::api::convert::{enterprise_in, enterprise_name, id_number, record_in};
use credit_hub::api::paging::{decode_token, page_size};
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::domain::record::check_consistency;
use credit_hub::domain::Violations;
use credit_hub::proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let keyer = PersonKeyer::new(b"fuzz-secret-0123456789".to_vec());
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    match which % 6 {
        0 => {
            let Ok(req) = pb::BatchSubmitRecordsRequest::decode(bytes) else { return };
            let mut v = Violations::default();
            for (i, r) in req.records.iter().enumerate() {
                let path = format!("records[{i}]");
                if let Some(new) = record_in(&mut v, &keyer, &path, r) {
                    check_consistency(&path, &new.content, today, &mut v);
                }
            }
            let _ = v.finish(());
        }
        1 => {
            let Ok(req) = pb::BatchUpsertEnterprisesRequest::decode(bytes) else { return };
            let mut v = Violations::default();
            for (i, e) in req.enterprises.iter().enumerate() {
                let _ = enterprise_in(&mut v, &keyer, &format!("enterprises[{i}]"), e, today);
            }
            let _ = v.finish(());
        }
        2 => {
            let Ok(req) = pb::GetCreditGradeRequest::decode(bytes) else { return };
            let _ = enterprise_name("name", &req.name);
        }
        3 => {
            let Ok(req) = pb::ListRecordsRequest::decode(bytes) else { return };
            let _ = page_size(req.page_size);
            let _ = decode_token::<(chrono::NaiveDate, String)>("query", &req.page_token);
            let _ = enterprise_name("subject_enterprise", &req.subject_enterprise);
            let mut v = Violations::default();
            let _ = id_number(&mut v, "subject_person_id_number", &req.subject_person_id_number);
        }
        4 => {
            let Ok(req) = pb::BatchGetCreditGradesRequest::decode(bytes) else { return };
            for n in &req.names {
                let _ = enterprise_name("names", n);
            }
        }
        _ => {
            let Ok(req) = pb::ListAuditEntriesRequest::decode(bytes) else { return };
            let _ = page_size(req.page_size);
            let _ = decode_token::<i64>("query", &req.page_token);
            let mut v = Violations::default();
            let _ = id_number(&mut v, "subject_person_id_number", &req.subject_person_id_number);
        }
    }
});
