// The seed's daily agent loop through a TypeScript client generated from the OpenAPI document.
//
//   npm ci && CLOZUP_URL=http://127.0.0.1:8080 npm run generate && npm run build
//   CLOZUP_URL=http://127.0.0.1:8080 CLOZUP_KEY=clz_... node dist/agent_loop.js
//
// Reads buying signals, reviews the riskiest deal with its intelligence and memory, logs what it
// did, remembers what it concluded and moves the deal on. `tsc --strict` checks every request
// against the document; refusals arrive as the typed error envelope.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];

const url = process.env.CLOZUP_URL ?? "http://127.0.0.1:8080";
const api = createClient<paths>({
  baseUrl: `${url}/api/v1`,
  headers: { Authorization: `Bearer ${process.env.CLOZUP_KEY}` },
});

function fail(step: string, detail: unknown): never {
  console.error(`${step}:`, detail);
  process.exit(1);
}

async function main(): Promise<void> {
  const signals = await api.GET("/signals", { params: { query: { score_min: 70 } } });
  if (!signals.data) fail("1. signals", signals.error);
  for (const s of signals.data.data) {
    const kind: Schemas["SignalType"] = s.type;
    const status: Schemas["SignalStatus"] = s.status;
    // Always sent, null when there is none: typed `string | null`, never `undefined`.
    const dealId: string | null = s.deal_id;
    if (Number.isNaN(Date.parse(s.detected_at))) fail("1. signals", s);
    void [kind, status, dealId];
  }
  console.log(`1. ${signals.data.meta.total} buying signals scored 70 or more`);

  const atRisk = await api.GET("/deals/at-risk");
  if (!atRisk.data) fail("2. at-risk", atRisk.error);
  const risky = atRisk.data.data[0];
  if (!risky) fail("2. at-risk", "no deal at risk: nothing to review");
  const brief = risky.deal;
  console.log(`2. ${atRisk.data.data.length} deals at risk; reviewing "${brief.title}" (${brief.stage_name})`);
  const id = { path: { id: risky.deal_id } };

  const intel = await api.GET("/deals/{id}/intelligence", { params: id });
  if (!intel.data) fail("3. intelligence", intel.error);
  const level: Schemas["RiskLevel"] = intel.data.data.risk_level;
  console.log(`3. ${level} risk: ${intel.data.data.suggested_action}`);

  const memory = await api.GET("/deals/{id}/memory", { params: id });
  if (!memory.data) fail("4. memory", memory.error);
  console.log(`4. ${memory.data.data.length} things remembered about the deal`);

  const activity = await api.POST("/activities", {
    params: { header: { "Idempotency-Key": `review-${risky.deal_id}-${new Date().toISOString().slice(0, 10)}` } },
    body: { type: "other", deal_id: risky.deal_id, subject: "Reviewed by the agent loop" },
  });
  if (!activity.data) fail("5. activity", activity.error);
  const logged: Schemas["ActivityType"] = activity.data.data.type;
  console.log(`5. logged ${activity.data.data.id} (${logged})`);

  const remembered = await api.POST("/deals/{id}/memory", {
    params: id,
    body: { content: `Risk ${intel.data.data.risk_score}: ${intel.data.data.suggested_action}` },
  });
  if (!remembered.data) fail("6. remember", remembered.error);
  console.log(`6. remembered ${remembered.data.data.id}`);

  const moved = await api.POST("/deals/{id}/move", { params: id, body: { stage: "Negotiation" } });
  if (!moved.data) fail("7. move", moved.error);
  const currency: Schemas["Currency"] = moved.data.data.currency;
  const owner: string | null = moved.data.data.owner_id;
  void [currency, owner];
  console.log(`7. moved ${moved.data.data.id} to ${moved.data.data.stage_id}`);

  // Refusals come back as the typed envelope, with the code to act on.
  const missing = await api.GET("/deals/{id}", { params: { path: { id: "deal_00000000000000000000000000" } } });
  const invalid = await api.GET("/signals", { params: { query: { per_page: 1000 } } });
  const codes: (Schemas["ErrorCode"] | undefined)[] = [missing.error?.error.code, invalid.error?.error.code];
  console.log(`errors: ${codes.join(", ")} (${invalid.error?.error.message})`);
  if (missing.response.status !== 404 || codes.join() !== "not_found,validation_error") {
    fail("errors", codes);
  }
}

// What the compiler refuses: these lines fail `tsc` unless the document says they are wrong.
export async function refusedAtCompileTime(): Promise<void> {
  // @ts-expect-error an activity type the server does not know
  await api.POST("/activities", { body: { type: "tweet", deal_id: "deal_x" } });
  // @ts-expect-error a status only converting gives
  await api.POST("/leads", { body: { email: "a@example.com", status: "converted" } });
  // @ts-expect-error a sort the list does not offer
  await api.GET("/deals", { params: { query: { sort: "-colour" } } });
  // @ts-expect-error a memory without its required content
  await api.POST("/deals/{id}/memory", { params: { path: { id: "deal_x" } }, body: { tags: [] } });
}

await main();
