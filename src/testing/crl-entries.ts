/**
 * CRL entries as an independent ASN.1 library (@peculiar/asn1-x509) reads them, for tests that check
 * what our CRL writer put in a CRL without going through our own reader.
 */
import { AsnConvert } from "@peculiar/asn1-schema";
import { CertificateList, CRLReason } from "@peculiar/asn1-x509";

/** Entries of a DER CRL: serial hex → reasonCode (RFC 5280 §5.3.1; 0 when the extension is absent). */
export function crlEntries(der: Buffer): Map<string, number> {
  const list = AsnConvert.parse(der, CertificateList).tbsCertList;
  return new Map(
    (list.revokedCertificates ?? []).map((entry) => {
      const reason = entry.crlEntryExtensions?.find((e) => e.extnID === "2.5.29.21");
      return [
        Buffer.from(entry.userCertificate).toString("hex"),
        reason ? AsnConvert.parse(reason.extnValue, CRLReason).reason : 0,
      ];
    }),
  );
}
