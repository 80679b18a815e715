//! `credit-hub cert …`: issue, look up, revoke and verify credit certificates, and
//! render one as a printable page. Verification works offline from an issuer-keys file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::Value;
use tonic::transport::Channel;

use super::vet::report::html_escape;
use super::{connect, explain, walk_pages, Authed, ClientArgs};
use crate::domain::certificate::{judge, presented, VerificationResult};
use crate::domain::data_integrity;
use crate::proto::v1 as pb;
use pb::certificate_service_client::CertificateServiceClient;

/// `cert` subcommands.
#[derive(clap::Subcommand)]
pub enum CertCommand {
    /// Issue a certificate (market-regulation agencies); writes the signed document.
    Issue {
        #[command(flatten)]
        client: ClientArgs,
        /// The enterprise's unified social credit code.
        #[arg(long)]
        enterprise: String,
        /// credit-status or annual-report-remediation.
        #[arg(long, value_parser = ["credit-status", "annual-report-remediation"])]
        kind: String,
        /// First day of the period (credit-status), YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last day of the period (credit-status), YYYY-MM-DD.
        #[arg(long)]
        to: Option<String>,
        /// Idempotency key: run again with the same one to get the same certificate
        /// (default: a new one each run).
        #[arg(long)]
        request_id: Option<String>,
        /// Where to write the signed document (default: `<serial>.json`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a certificate and write its document.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        /// Its serial number.
        serial: String,
        /// Where to write the signed document.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List certificates, newest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only this enterprise's (USCC).
        #[arg(long)]
        enterprise: Option<String>,
        /// Only this status: valid, revoked, suspended, superseded or expired.
        #[arg(long)]
        status: Option<String>,
    },
    /// Revoke a certificate (market-regulation agencies).
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        /// Its serial number.
        serial: String,
        /// Why; shown to everyone who verifies it.
        #[arg(long)]
        reason: String,
    },
    /// Verify a certificate document: offline with --issuer-keys (signature and
    /// validity only), else online (also revocation and suspension). Exits non-zero
    /// unless VALID.
    Verify {
        /// The certificate JSON.
        file: PathBuf,
        /// Issuer keys as `cert keys` writes them; verifies without the service.
        #[arg(long)]
        issuer_keys: Option<PathBuf>,
        /// Address of the service, for online verification (no token needed).
        #[arg(
            long,
            env = "CREDIT_HUB_ADDR",
            default_value = "http://127.0.0.1:50051"
        )]
        addr: String,
    },
    /// Print the issuer's public keys as JSON, for offline verification.
    Keys {
        /// Address of the service (no token needed).
        #[arg(
            long,
            env = "CREDIT_HUB_ADDR",
            default_value = "http://127.0.0.1:50051"
        )]
        addr: String,
    },
    /// Render a certificate as a printable page.
    Render {
        /// The certificate JSON.
        file: PathBuf,
        /// Write HTML (the only format).
        #[arg(long, required = true)]
        html: bool,
        /// Where to write it (default: the input with `.html`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a `cert` subcommand.
pub async fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::Issue {
            client,
            enterprise,
            kind,
            from,
            to,
            request_id,
            out,
        } => {
            let kind = match kind.as_str() {
                "credit-status" => pb::CertificateKind::CreditStatus,
                _ => pb::CertificateKind::AnnualReportRemediation,
            };
            let request_id =
                request_id.unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
            let cert = certificates(&client)
                .await?
                .issue_certificate(pb::IssueCertificateRequest {
                    enterprise: super::enterprise_name(&enterprise),
                    kind: kind as i32,
                    period_start_date: from.unwrap_or_default(),
                    period_end_date: to.unwrap_or_default(),
                    request_id: request_id.clone(),
                })
                .await
                .map_err(|status| {
                    super::write_failed(status, "the certificate may have been issued", &request_id)
                })?
                .into_inner()
                .certificate
                .context("empty response")?;
            show(&cert, client.json)?;
            // Issued: a run again without the request id would issue a second one.
            write_document(&cert, out).with_context(|| {
                format!(
                    "certificate {} was issued; write its document with `credit-hub cert get {} --out FILE` (or run again with --request-id {request_id})",
                    cert.serial_number, cert.serial_number
                )
            })
        }
        CertCommand::Get {
            client,
            serial,
            out,
        } => {
            let cert = certificates(&client)
                .await?
                .get_certificate(pb::GetCertificateRequest {
                    name: format!("certificates/{}", serial.trim()),
                })
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
                .context("empty response")?;
            show(&cert, client.json)?;
            match out {
                Some(path) => write_document(&cert, Some(path)),
                None => Ok(()),
            }
        }
        CertCommand::List {
            client,
            enterprise,
            status,
        } => {
            let status = match status.as_deref() {
                None => 0,
                Some(s) => pb::CertificateStatus::from_str_name(&format!(
                    "CERTIFICATE_STATUS_{}",
                    s.to_uppercase()
                ))
                .with_context(|| format!("unknown status {s:?}"))?
                    as i32,
            };
            let mut api = certificates(&client).await?;
            walk_pages(
                async |page_token| {
                    let page = api
                        .list_certificates(pb::ListCertificatesRequest {
                            enterprise: enterprise
                                .as_ref()
                                .map(|u| super::enterprise_name(u))
                                .unwrap_or_default(),
                            status,
                            page_size: 1000,
                            page_token,
                        })
                        .await
                        .map_err(explain)?
                        .into_inner();
                    Ok((page.certificates, page.next_page_token))
                },
                |cert| show(&cert, client.json).map(|()| true),
            )
            .await
            .map(drop)
        }
        CertCommand::Revoke {
            client,
            serial,
            reason,
        } => {
            let cert = certificates(&client)
                .await?
                .revoke_certificate(pb::RevokeCertificateRequest {
                    name: format!("certificates/{}", serial.trim()),
                    reason,
                    request_id: uuid::Uuid::now_v7().simple().to_string(),
                })
                .await
                .map_err(explain)?
                .into_inner()
                .certificate
                .context("empty response")?;
            show(&cert, client.json)
        }
        CertCommand::Verify {
            file,
            issuer_keys,
            addr,
        } => {
            let document = read(&file)?;
            let (result, reason) = match issuer_keys {
                Some(keys) => verify_offline(&document, &read(&keys)?)?,
                None => {
                    let r = public(&addr)
                        .await?
                        .verify_certificate(pb::VerifyCertificateRequest { document })
                        .await
                        .map_err(explain)?
                        .into_inner();
                    let result = VerificationResult::from_number(r.result)
                        .context("the service returned no result")?;
                    (result, r.reason)
                }
            };
            crate::out!(
                "{}{}",
                result.code(),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            );
            if result != VerificationResult::Valid {
                std::process::exit(2);
            }
            Ok(())
        }
        CertCommand::Keys { addr } => {
            let keys = public(&addr)
                .await?
                .list_issuer_keys(pb::ListIssuerKeysRequest {})
                .await
                .map_err(explain)?
                .into_inner()
                .keys;
            let keys: Vec<Value> = keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "keyId": k.key_id,
                        "publicKeyMultibase": k.public_key_multibase,
                        "validFrom": k.valid_from.as_ref().map(time_text),
                        "validUntil": k.valid_until.as_ref().map(time_text),
                    })
                })
                .collect();
            crate::out!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "keys": keys }))?
            );
            Ok(())
        }
        CertCommand::Render { file, html: _, out } => {
            let document: Value = serde_json::from_str(&read(&file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let page = render_html(&document)?;
            let out = out.unwrap_or_else(|| file.with_extension("html"));
            super::write_file(&out, page.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
    }
}

async fn certificates(client: &ClientArgs) -> anyhow::Result<CertificateServiceClient<Authed>> {
    let (channel, bearer) = connect(client).await?;
    Ok(CertificateServiceClient::with_interceptor(channel, bearer))
}

/// A client for the public RPCs, which need no credentials.
async fn public(addr: &str) -> anyhow::Result<CertificateServiceClient<Channel>> {
    Ok(CertificateServiceClient::new(
        super::public_channel(addr).await?,
    ))
}

/// A document's text; a byte order mark an editor saved it with is not part of it.
fn read(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn time_text(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, 0)
        .map(crate::domain::certificate::xsd_time)
        .unwrap_or_default()
}

fn show(c: &pb::Certificate, json: bool) -> anyhow::Result<()> {
    let status = pb::CertificateStatus::try_from(c.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CERTIFICATE_STATUS_")
                .to_string()
        })
        .unwrap_or_default();
    let kind = pb::CertificateKind::try_from(c.kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("CERTIFICATE_KIND_")
                .to_string()
        })
        .unwrap_or_default();
    if json {
        crate::out!(
            "{}",
            serde_json::json!({
                "name": c.name,
                "serial_number": c.serial_number,
                "enterprise": c.enterprise,
                "enterprise_name": c.enterprise_display_name,
                "kind": kind,
                "status": status,
                "status_reason": c.status_reason,
                "valid_until": c.valid_until.as_ref().map(time_text),
                "issuer_key_id": c.issuer_key_id,
            })
        );
    } else {
        crate::out!(
            "{}  {}  {}  {}  valid until {}{}",
            c.serial_number,
            kind,
            status,
            c.enterprise_display_name,
            c.valid_until.as_ref().map(time_text).unwrap_or_default(),
            if c.status_reason.is_empty() {
                String::new()
            } else {
                format!("  ({})", c.status_reason)
            }
        );
    }
    Ok(())
}

fn write_document(c: &pb::Certificate, out: Option<PathBuf>) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.json", c.serial_number)));
    super::write_file(&out, c.document.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Verifies `document` against the keys in `keys_json` (as `cert keys` prints them):
/// the signature and the validity period. Revocation and suspension need the service.
pub fn verify_offline(
    document: &str,
    keys_json: &str,
) -> anyhow::Result<(VerificationResult, String)> {
    let keys: Value =
        serde_json::from_str(keys_json).context("the issuer keys file is not JSON")?;
    let keys = keys
        .get("keys")
        .and_then(Value::as_array)
        .context("the issuer keys file has no \"keys\" list")?;
    let Some(doc) = crate::domain::jcs::parse_strict(document) else {
        return Ok((
            VerificationResult::Tampered,
            "do not trust this document: it is not valid JSON, or names a field twice".into(),
        ));
    };
    let shown = presented(&doc);
    let entry = keys
        .iter()
        .find(|k| k.get("keyId").and_then(Value::as_str) == shown.key_id.as_deref());
    // A key signs only within its period: a signature dated outside it was made with
    // a key before it was published or after it was retired (and may have leaked).
    if let Some(entry) = entry {
        let bound = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        };
        // An undated proof (or one whose date does not read) could have been made at
        // any time: where the key has a period, it is not trusted.
        let outside = match shown.created {
            Some(created) => {
                bound("validFrom").is_some_and(|from| created < from)
                    || bound("validUntil").is_some_and(|until| created > until)
            }
            None => bound("validFrom").is_some() || bound("validUntil").is_some(),
        };
        if outside {
            return Ok((
                VerificationResult::Tampered,
                format!(
                    "do not trust this document: its proof is undated, or dated outside the period of issuer key {} (validFrom–validUntil in the keys file); verify it online",
                    shown.key_id.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let key = entry
        .and_then(|k| k.get("publicKeyMultibase").and_then(Value::as_str))
        .map(data_integrity::parse_public_key)
        .transpose()
        .map_err(|e| anyhow::anyhow!("the issuer keys file holds a bad key: {e}"))?;
    let proof = data_integrity::verify(&doc, |_| key).map(|_| ());
    let (result, reason) = judge(proof, &shown, None, Utc::now());
    let reason = if result == VerificationResult::Valid {
        "signature and validity period checked offline; revocation is checked only online".into()
    } else {
        reason
    };
    Ok((result, reason))
}

/// A printable page: Chinese headings, the statements, the serial number, and a QR code
/// carrying the serial and where to verify it.
pub fn render_html(doc: &Value) -> anyhow::Result<String> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let subject = doc
        .get("credentialSubject")
        .context("the document has no credentialSubject")?;
    let serial = doc
        .pointer("/credentialStatus/serialNumber")
        .map(s)
        .unwrap_or_default();
    if serial.is_empty() {
        bail!("the document has no serial number (credentialStatus.serialNumber)");
    }
    let route = doc
        .pointer("/credentialStatus/statusService")
        .map(s)
        .unwrap_or_default();
    let qr_payload = format!("{route}?serial={serial}");
    let qr = qrcode::QrCode::new(qr_payload.as_bytes())
        .context("the verification route is too long for a QR code")?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(160, 160)
        .build();
    // Inline in HTML the SVG needs no XML declaration.
    let qr = qr
        .find("<svg")
        .map_or(qr.as_str(), |at| &qr[at..])
        .to_string();
    let e = |v: &str| html_escape(v).into_owned();
    let mut body = String::new();
    let items = |title: &str, list: Option<&Value>, body: &mut String| {
        body.push_str(&format!("<h2>{}</h2>", e(title)));
        let list = list.and_then(Value::as_array).cloned().unwrap_or_default();
        if list.is_empty() {
            body.push_str("<p>无</p>");
            return;
        }
        body.push_str("<table><tr><th>决定文书号</th><th>决定日期</th><th>决定机关</th><th>内容</th><th>公示截止</th><th>状态</th></tr>");
        for item in &list {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&s(&item["documentNumber"])),
                e(&s(&item["decisionDate"])),
                e(&s(&item["decidingAuthority"])),
                e(&s(&item["summary"])),
                e(&s(&item["publicityEndDate"])),
                if item["repaired"] == Value::Bool(true) {
                    "已信用修复"
                } else {
                    "公示中"
                }
            ));
        }
        body.push_str("</table>");
    };
    if let Some(period) = subject.get("period") {
        body.push_str(&format!(
            "<p class=\"period\">证明期间：{} 至 {}</p>",
            e(&s(&period["startDate"])),
            e(&s(&period["endDate"]))
        ));
        items(
            "一、行政处罚信息",
            subject.get("administrativePenalties"),
            &mut body,
        );
        items(
            "二、行政强制信息",
            subject.get("administrativeCoerciveMeasures"),
            &mut body,
        );
        items(
            "三、严重违法失信名单信息",
            subject.pointer("/seriousDishonesty/listingsInPeriod"),
            &mut body,
        );
        if let Some(path) = subject
            .pointer("/seriousDishonesty/repairPath")
            .and_then(Value::as_str)
        {
            body.push_str(&format!(
                "<p>列入原因仅为未按时报送年度报告。{}</p>",
                e(path)
            ));
        }
        if let Some(note) = subject
            .pointer("/criminalRecords/note")
            .and_then(Value::as_str)
        {
            body.push_str(&format!("<h2>四、刑事犯罪记录</h2><p>{}</p>", e(note)));
        }
    } else {
        items(
            "一、严重违法失信名单列入情况",
            subject.get("seriousDishonestyListings"),
            &mut body,
        );
        body.push_str("<h2>二、年度报告补报情况</h2><table><tr><th>年度</th><th>经营异常列入文书号</th><th>补报日期</th></tr>");
        for m in subject["missedAnnualReports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&m["reportYear"].to_string()),
                // A year that fell due while listed has no listing of its own.
                e(&match s(&m["abnormalListing"]["documentNumber"]) {
                    n if n.is_empty() => "（在列期间到期）".to_string(),
                    n => n,
                }),
                e(&s(&m["filing"]["filedDate"]))
            ));
        }
        body.push_str("</table>");
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title} {serial}</title>\
         <style>body{{font-family:serif;max-width:48em;margin:2em auto}}h1{{text-align:center}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #444;padding:4px;font-size:90%}}\
         .qr{{float:right;text-align:center;font-size:80%}}</style></head><body>\
         <div class=\"qr\">{qr}<br>扫码核验</div><h1>{title}</h1>\
         <p>证明编号：{serial}</p><p>企业名称：{name}</p><p>统一社会信用代码：{uscc}</p>\
         <h2>说明</h2><p>{summary}</p>{body}\
         <h2>有效期与核验</h2><p>有效期：{from} 至 {until}</p><p>出具机关：{issuer}</p>\
         <p>核验方式：以出具机关公布的公钥离线核验本证明的电子签名（W3C 可验证凭证，eddsa-jcs-2022），或调用 {route} 在线核验（证明编号 {serial}）。</p>\
         </body></html>\n",
        title = e(&s(&doc["name"])),
        serial = e(&serial),
        name = e(&s(&subject["name"])),
        uscc = e(&s(&subject["uscc"])),
        summary = e(&s(&subject["summary"])),
        from = e(&s(&doc["validFrom"])),
        until = e(&s(&doc["validUntil"])),
        issuer = e(&s(&doc["issuer"]["name"])),
        route = e(&route),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page is built from a document that may be forged: every value in it is text.
    #[test]
    fn the_printable_page_escapes_every_value() {
        let script = "</td><script>alert(1)</script>";
        let doc = serde_json::json!({
            "credentialStatus": { "serialNumber": "CH-1", "statusService": "grpc://x" },
            "credentialSubject": {
                "seriousDishonestyListings": [{ "documentNumber": script }],
                "missedAnnualReports": [{
                    "reportYear": script,
                    "abnormalListing": { "documentNumber": script },
                    "filing": { "filedDate": script },
                }],
            },
        });
        let page = render_html(&doc).unwrap();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }
}
