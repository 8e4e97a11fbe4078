// Reads a JSON array of HTTP messages ({"headers": {...}, "body": "..."}) on stdin and parses
// each with the official CloudEvents JavaScript SDK (HTTP.toEvent, then a strict copy, which
// checks extension names and values and runs the SDK's schema validation). Writes a JSON array
// of results: {"ok": true, "event": {...}} or {"ok": false, "error": "..."}.
"use strict";
const { HTTP, CloudEvent } = require("cloudevents");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((message) => {
    try {
      let parsed = HTTP.toEvent({ headers: message.headers, body: message.body });
      if (Array.isArray(parsed)) parsed = parsed[0];
      const strict = new CloudEvent({ ...parsed }, true);
      strict.validate();
      return { ok: true, event: JSON.parse(JSON.stringify(strict)) };
    } catch (e) {
      const details = e.errors ? " " + JSON.stringify(e.errors) : "";
      return { ok: false, error: String(e.message || e) + details };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
