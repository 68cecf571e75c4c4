#!/usr/bin/env node
// Copies the ABI and bytecode of the deployed contracts from forge's output
// directory into committed artifacts (forge artifact layout, trimmed to the
// fields chain/ binds), with stable formatting so a fresh compile can be
// compared byte for byte. Usage: export-artifacts.js <forge-out-dir> <dest-dir>
"use strict";
const fs = require("fs");
const path = require("path");
const CONTRACTS = [
  "CollectiveToken",
  "CollectiveGovernor",
  "TimelockController",
  "CodeRegistry",
  "NodeRegistry",
  "DataRegistry",
];
const [outDir, dest] = process.argv.slice(2);
if (!outDir || !dest) {
  process.stderr.write("usage: export-artifacts.js <forge-out-dir> <dest-dir>\n");
  process.exit(64);
}
fs.mkdirSync(dest, { recursive: true });
for (const name of CONTRACTS) {
  const src = path.join(outDir, name + ".sol", name + ".json");
  const a = JSON.parse(fs.readFileSync(src, "utf8"));
  const trimmed = {
    abi: a.abi,
    bytecode: { object: a.bytecode.object },
    deployedBytecode: { object: a.deployedBytecode.object },
    methodIdentifiers: a.methodIdentifiers,
  };
  fs.writeFileSync(path.join(dest, name + ".json"), JSON.stringify(trimmed, null, 2) + "\n");
}
