-- Client certificates: an agency may also be identified by a name its TLS client
-- certificate carries (subject Common Name, or a DNS, URI or e-mail Subject Alternative
-- Name), bound with `agency add --cert-subject`. One name identifies at most one agency.

ALTER TABLE agencies ADD COLUMN cert_subject TEXT;

CREATE UNIQUE INDEX agencies_cert_subject ON agencies (cert_subject);
