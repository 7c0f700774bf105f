export {};
//# sourceMappingURL=keystore.js.map