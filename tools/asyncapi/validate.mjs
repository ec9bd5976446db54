// Parse an AsyncAPI document with the official parser; exit 1 on any error-level finding.
// Usage: node validate.mjs ../../docs/asyncapi.json
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs <asyncapi document>");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"), { source: path });
const severities = ["error", "warning", "info", "hint"];
for (const item of diagnostics) {
  const where = item.path.join("/") || "(document)";
  console.log(`${severities[item.severity] ?? item.severity}\t${item.code}\t${where}\t${item.message}`);
}
if (document === undefined || diagnostics.some((item) => item.severity === 0)) {
  console.error(`${path}: not a valid AsyncAPI document`);
  process.exit(1);
}
console.log(`${path}: valid AsyncAPI ${document.version()}, ${document.channels().length} channels`);
