// Reads AG-UI runs from stdin ({"runs": [[body, ...], ...]}: each run the bodies of its streams, a
// cut one and the resumes that continue it) as @ag-ui/client reads a stream: its SSE transform, then
// its verifier over the run's events taken together; each event also checked by @ag-ui/core's schema.
import { transformHttpEventStream, verifyEvents } from "@ag-ui/client";
import { EventSchema } from "@ag-ui/core/schemas";
import { asapScheduler, concat, defer, lastValueFrom, scheduled, toArray } from "rxjs";

const pieces = [];
for await (const piece of process.stdin) pieces.push(piece);
const { runs } = JSON.parse(Buffer.concat(pieces).toString());
const headers = new Headers({ "content-type": "text/event-stream" });
const encoder = new TextEncoder();

// As a response arrives: later than the transform subscribes (it reads its source at once).
const read = (body) => defer(() => transformHttpEventStream(scheduled([
  { type: "headers", status: 200, headers },
  { type: "data", data: encoder.encode(body) },
], asapScheduler)));

const results = [];
for (const bodies of runs) {
  try {
    const events = await lastValueFrom(concat(...bodies.map(read)).pipe(verifyEvents(), toArray()));
    const invalid = events.map((event) => EventSchema.safeParse(event)).filter((parsed) => !parsed.success);
    results.push({ events, error: null, invalid: invalid.map((parsed) => String(parsed.error)) });
  } catch (error) {
    results.push({ events: null, error: String(error), invalid: [] });
  }
}
process.stdout.write(JSON.stringify(results));
