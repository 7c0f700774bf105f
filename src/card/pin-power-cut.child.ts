/**
 * Child process of pin-power-cut.test.ts: sends wrong-PIN VERIFYs in a loop to a card on `argv[2]`
 * and logs each one on stdout BEFORE sending it ("sent") and after its answer ("answered"), with
 * synchronous writes, so the parent knows what happened when it pulls the power (SIGKILL).
 */
import { writeSync } from "node:fs";
import { openMyNumberCard } from "./mynacard.js";

const statePath = process.argv[2];
if (!statePath) throw new Error("usage: pin-power-cut.child <state file>");
const card = openMyNumberCard(statePath);
const send = (text: string) => card.transmitSync(Buffer.from(text.replace(/ /g, ""), "hex"));
send("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01");
send("00 A4 02 0C 02 00 18");
writeSync(1, "ready\n");
for (;;) {
  writeSync(1, "sent\n");
  const answer = send("00 20 00 80 04 39 39 39 39"); // "9999", never the PIN
  writeSync(1, `answered ${answer.toString("hex")}\n`);
  if (answer.toString("hex") === "6983") process.exit(0);
}
