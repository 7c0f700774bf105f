export const certificateIssuers = ["sign", "auth", "sim-maker"];
export const certificateKinds = [
    "card-sign",
    "card-auth",
    "phone-auth",
    "phone-sign",
    "ocsp",
    "ca",
    "sim-attestation",
];
export const certificateMedia = ["card", "sim", "none"];
//# sourceMappingURL=schema.js.map