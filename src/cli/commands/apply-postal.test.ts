/**
 * The postal channel from the command line, in child processes on a fresh data directory: a citizen
 * applies by post, the carrier hands the letter over after the identity check, the code completes the
 * application on the SIM named; a citizen living elsewhere gets nothing, the letter returns and the
 * application goes to the counter; an unmatched form and a wrong code are refused with what to do.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { newAccessCode } from "../../ra/access-codes.js";
import { cliSandbox } from "../../testing/cli.js";

const cli = cliSandbox("postal");
const { ok } = cli;

const ADDRESS = "福岡県福岡市中央区天神1-1-1";
const person = (name: string) => [
  "--name",
  name,
  "--birth",
  "1992-12-01",
  "--sex",
  "female",
  "--address",
  ADDRESS,
];

interface Delivery {
  trackingNumber: string;
  handedOver: boolean;
  status: string;
  letter?: string;
  reason?: string;
}

test("apply by post from the command line: request, delivery, access code; a person living elsewhere goes to the counter", async () => {
  await ok(["ca", "init"]);
  await ok(["citizen", "add", ...person("郵便 花子"), "--json"]);
  const sim = JSON.parse(await ok(["sim", "create", "--carrier", "sakura", "--json"])) as {
    simState: string;
    iccid: string;
  };

  // A form that matches no one: refused, no attribute named, nothing mailed.
  const unmatched = await cli.run([
    "apply",
    "postal-request",
    "--sim",
    sim.simState,
    ...person("郵便 花子").slice(0, 3),
    "1992-12-02",
    "--sex",
    "female",
    "--address",
    ADDRESS,
  ]);
  assert.equal(unmatched.code, 1);
  assert.match(
    unmatched.stderr,
    /no resident with a valid My Number card matches the name, birth date, sex and address given/,
  );

  const requested = JSON.parse(
    await ok(["apply", "postal-request", "--sim", sim.simState, ...person("郵便 花子"), "--json"]),
  ) as { applicationId: string; status: string; trackingNumber: string };
  assert.equal(requested.status, "awaiting-code");
  assert.match(await ok(["post", "list"]), new RegExp(`${requested.trackingNumber}\\s+sent`));

  // No identity check: not handed over, and no letter printed.
  const unchecked = JSON.parse(
    await ok(["post", "deliver", "--tracking", requested.trackingNumber, "--json"]),
  ) as Delivery[];
  assert.deepEqual(
    unchecked.map((d) => [d.handedOver, d.reason, d.letter]),
    [[false, "identity-not-checked", undefined]],
  );
  const delivered = JSON.parse(
    await ok(["post", "deliver", "--tracking", requested.trackingNumber, "--identity-checked", "--json"]),
  ) as Delivery[];
  assert.equal(delivered[0]?.handedOver, true);
  const code = /^Access code: +(\S+)$/m.exec(delivered[0]?.letter ?? "")?.[1];
  assert.ok(code, delivered[0]?.letter);

  // A mistyped code is refused without counting; a wrong one counts; then the right one completes
  // the application on the SIM.
  const typo = code.startsWith("0") ? `1${code.slice(1)}` : `0${code.slice(1)}`;
  const mistyped = await cli.run([
    "apply",
    "access-code",
    requested.applicationId,
    "--sim",
    sim.simState,
    "--code",
    typo,
  ]);
  assert.equal(mistyped.code, 1);
  assert.match(mistyped.stderr, /not an access code.*did not count/);
  let other = newAccessCode();
  while (other === code) other = newAccessCode();
  const wrong = await cli.run([
    "apply",
    "access-code",
    requested.applicationId,
    "--sim",
    sim.simState,
    "--code",
    other,
  ]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /wrong access code.*4 attempts left/);
  const done = JSON.parse(
    await ok([
      "apply",
      "access-code",
      requested.applicationId,
      "--sim",
      sim.simState,
      "--code",
      code.toLowerCase(),
      "--pin",
      "1357",
      "--json",
    ]),
  ) as { status: string; certificateSerial: string; pin: string };
  assert.deepEqual([done.status, done.pin], ["delivered", "set"]);
  const shown = JSON.parse(await ok(["application", "show", requested.applicationId, "--json"])) as {
    history: { status: string }[];
  };
  assert.deepEqual(
    shown.history.map((e) => e.status),
    ["received", "awaiting-code", "verified", "issued", "delivering", "delivered"],
  );
  const again = await cli.run([
    "apply",
    "access-code",
    requested.applicationId,
    "--sim",
    sim.simState,
    "--code",
    code,
  ]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /completed already/);

  // Someone whose residence is elsewhere: the letter is not handed over and comes back.
  await ok(["citizen", "add", ...person("転居 桜"), "--residence", "北海道函館市1-1", "--json"]);
  const sim2 = JSON.parse(await ok(["sim", "create", "--carrier", "kaede", "--json"])) as {
    simState: string;
  };
  const moved = JSON.parse(
    await ok(["apply", "postal-request", "--sim", sim2.simState, ...person("転居 桜"), "--json"]),
  ) as { applicationId: string; trackingNumber: string };
  const notFound = JSON.parse(
    await ok([
      "post",
      "deliver",
      "--tracking",
      moved.trackingNumber,
      "--identity-checked",
      "--hold-days",
      "0",
      "--json",
    ]),
  ) as Delivery[];
  assert.deepEqual(
    notFound.map((d) => [d.handedOver, d.reason, d.letter]),
    [[false, "addressee-not-found", undefined]],
  );
  const swept = await ok(["post", "return-overdue"]);
  assert.match(swept, new RegExp(`${moved.trackingNumber}\\s+returned`));
  assert.match(swept, new RegExp(`application ${moved.applicationId} referred to the municipal counter`));
  const referred = JSON.parse(await ok(["application", "show", moved.applicationId, "--json"])) as {
    status: string;
    history: { reason: string | null }[];
  };
  assert.equal(referred.status, "referred-to-counter");
  assert.match(
    referred.history.at(-1)?.reason ?? "",
    /could not be handed to the addressee.*municipal counter/,
  );
  assert.match(await ok(["post", "return-overdue"]), /No mail is past its holding period/);
  await ok(["audit", "verify"]);
});
