// Sharded safetensors models: a two-shard round trip and one test per way an
// index can be wrong (escaping shard names, missing shard, misplaced or
// unlisted tensors), plus the bundled single-file model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "format_error.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/safetensors_index.hpp"

namespace {

namespace fs = std::filesystem;

// A fresh directory per test.
fs::path test_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vkq_sharded_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

const std::vector<float> kA{1, 2, 3, 4, 5, 6}, kB{-1, -2}, kC{0.5f, 0.25f, 0.125f};
constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
constexpr const char* kShard2 = "model-00002-of-00002.safetensors";

// Shard 1 holds a and b, shard 2 holds c (plus `extra` in shard 2 when given).
void write_shards(const fs::path& dir, bool extra = false) {
  vkq::write_safetensors(dir / kShard1, {vkq::f32_tensor("a", {2, 3}, kA), vkq::f32_tensor("b", {2}, kB)});
  std::vector<vkq::TensorWrite> t2{vkq::f32_tensor("c", {3}, kC)};
  if (extra) t2.push_back(vkq::f32_tensor("extra", {2}, kB));
  vkq::write_safetensors(dir / kShard2, t2);
}

std::string index_json(const std::string& a_shard = kShard1, const std::string& extra_entries = "") {
  return R"({"metadata": {"total_size": 44}, "weight_map": {"a": ")" + a_shard + R"(", "b": ")" + std::string(kShard1) +
         R"(", "c": ")" + std::string(kShard2) + "\"" + extra_entries + "}}";
}

void expect_refused(const fs::path& p, const std::string& fragment) {
  try {
    (void)vkq::SafetensorsModel::open(p);
    ADD_FAILURE() << p << " was accepted";
  } catch (const vkq::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "wanted \"" << fragment << "\" in: " << e.what();
  }
}

TEST(ShardedSafetensors, TwoShardsRoundTrip) {
  const fs::path dir = test_dir("roundtrip");
  write_shards(dir);
  write_text(dir / "model.safetensors.index.json", index_json());
  for (const fs::path& p : {dir, dir / "model.safetensors.index.json"}) {
    SCOPED_TRACE(p.string());
    const auto m = vkq::SafetensorsModel::open(p);
    EXPECT_EQ(m.directory(), dir);
    ASSERT_EQ(m.shards().size(), 2u);
    EXPECT_EQ(m.shards()[0].path().filename(), kShard1);
    EXPECT_EQ(m.tensor_names(), (std::vector<std::string>{"a", "b", "c"}));
    const vkq::SafetensorsFile* shard = nullptr;
    const auto* c = m.find("c", &shard);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(shard, &m.shards()[1]);
    EXPECT_EQ(c->shape, (std::vector<std::uint64_t>{3}));
    ASSERT_NE(m.find("a", &shard), nullptr);
    EXPECT_EQ(shard, &m.shards()[0]);
    EXPECT_EQ(m.find("nope"), nullptr);
    EXPECT_EQ(m.to_float("a"), kA);
    EXPECT_EQ(m.to_float("b"), kB);
    EXPECT_EQ(m.to_float("c"), kC);
    try {
      (void)m.to_float("nope");
      ADD_FAILURE() << "an absent tensor was read";
    } catch (const vkq::FormatError& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find("'nope'"), std::string::npos) << w;
      EXPECT_NE(w.find("model.safetensors.index.json"), std::string::npos) << w;
    }
  }
}

TEST(ShardedSafetensors, SingleFileDirectory) {
  const fs::path dir = test_dir("single");
  vkq::write_safetensors(dir / "model.safetensors", {vkq::f32_tensor("a", {2, 3}, kA)});
  for (const fs::path& p : {dir, dir / "model.safetensors"}) {
    const auto m = vkq::SafetensorsModel::open(p);
    ASSERT_EQ(m.shards().size(), 1u);
    EXPECT_EQ(m.to_float("a"), kA);
  }
  expect_refused(test_dir("empty"), "holds no model.safetensors");
}

TEST(ShardedSafetensors, EscapingShardNamesRefused) {
  const fs::path dir = test_dir("escape");
  write_shards(dir);
  fs::create_directories(dir / "a");
  vkq::write_safetensors(dir / "a" / "b.safetensors", {vkq::f32_tensor("a", {2, 3}, kA)});
  const std::pair<std::string, std::string> cases[] = {
      {"../x.safetensors", "path separator"}, {"/abs/x.safetensors", "path separator"}, {"a/b.safetensors", "path separator"},
      {"a\\\\b.safetensors", "path separator"}, {"..", "is not a file name"},           {"", "is empty"},
      {"c:x.safetensors", "contains ':'"},      {"x\\u0000.safetensors", "NUL"},
  };
  for (const auto& [name, why] : cases) {
    SCOPED_TRACE(name);
    write_text(dir / "model.safetensors.index.json", index_json(name));
    expect_refused(dir, why);
  }
}

TEST(ShardedSafetensors, MissingShard) {
  const fs::path dir = test_dir("missing");
  write_shards(dir);
  fs::remove(dir / kShard2);
  write_text(dir / "model.safetensors.index.json", index_json());
  expect_refused(dir, "shard 'model-00002-of-00002.safetensors'");
}

TEST(ShardedSafetensors, TensorListedInWrongShard) {
  const fs::path dir = test_dir("wrong");
  write_shards(dir);
  write_text(dir / "model.safetensors.index.json", index_json(kShard2));
  expect_refused(dir, "tensor 'a' is in shard 'model-00001-of-00002.safetensors' but the weight_map puts it in 'model-00002");
}

TEST(ShardedSafetensors, ShardTensorNotListed) {
  const fs::path dir = test_dir("unlisted");
  write_shards(dir, true);
  write_text(dir / "model.safetensors.index.json", index_json());
  expect_refused(dir, "holds tensor 'extra' which the weight_map does not list");
}

TEST(ShardedSafetensors, ListedTensorAbsent) {
  const fs::path dir = test_dir("absent");
  write_shards(dir);
  write_text(dir / "model.safetensors.index.json", index_json(kShard1, R"(, "ghost": "model-00001-of-00002.safetensors")"));
  expect_refused(dir, "puts tensor 'ghost' in shard 'model-00001-of-00002.safetensors' which does not hold it");
}

TEST(ShardedSafetensors, TensorInTwoShards) {
  const fs::path dir = test_dir("twice");
  write_shards(dir);
  vkq::write_safetensors(dir / kShard2, {vkq::f32_tensor("c", {3}, kC), vkq::f32_tensor("b", {2}, kB)});
  write_text(dir / "model.safetensors.index.json", index_json());
  expect_refused(dir, "tensor 'b' is in two shards");
}

TEST(ShardedSafetensors, MalformedIndex) {
  const fs::path dir = test_dir("malformed");
  write_shards(dir);
  const fs::path idx = dir / "model.safetensors.index.json";
  write_text(idx, R"({"weight_map": {"a": "x", "a": "y"}})");
  EXPECT_THROW((void)vkq::SafetensorsModel::open(idx), vkq::FormatError);  // duplicate key (strict JSON)
  write_text(idx, R"({"weight_map": ["a"]})");
  expect_refused(idx, "no \"weight_map\" object");
  write_text(idx, R"({"weight_map": {"a": 3}})");
  expect_refused(idx, "not a file name");
  write_text(idx, "[]");
  expect_refused(idx, "not a JSON object");
}

TEST(ShardedSafetensors, BundledModelMatchesItsGguf) {
  const fs::path models = fs::path(__FILE__).parent_path().parent_path() / "models";
  ASSERT_TRUE(fs::exists(models / "kjv-llama" / "model.safetensors"));
  const auto m = vkq::SafetensorsModel::open(models / "kjv-llama");
  ASSERT_EQ(m.shards().size(), 1u);
  const auto g = vkq::GgufFile::open(models / "kjv-llama.gguf");
  // token_embd.weight (ggml ne [dim, vocab]) is model.embed_tokens.weight ([vocab, dim]) unpermuted.
  const auto* t = g.find_tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  const auto* s = m.find("model.embed_tokens.weight");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->shape, (std::vector<std::uint64_t>{t->ne[1], t->ne[0]}));
  EXPECT_EQ(m.to_float("model.embed_tokens.weight"), g.to_float(*t));
}

// ---- hostile index files: one test per case, each error naming the index,
// the key and (for JSON syntax) the byte offset ----

// open() throws a FormatError for `file` whose message holds `fragment` and
// `key`, at byte `at` (kNoOffset: none known).
void expect_index_refused(const fs::path& dir, const fs::path& file, const std::string& fragment, const std::string& key,
                          std::uint64_t at) {
  vkq::test::expect_format_error([&] { (void)vkq::SafetensorsModel::open(dir); }, file, fragment, key, at);
}

// A directory with both shards and an index holding `text`.
fs::path index_dir(const std::string& name, const std::string& text) {
  const fs::path dir = test_dir(name);
  write_shards(dir);
  write_text(dir / "model.safetensors.index.json", text);
  return dir;
}

TEST(ShardedSafetensors, TruncatedIndex) {
  const std::string full = index_json();
  // Cut after `"weight_map": `: the end of input is where the value should start.
  const fs::path dir = index_dir("truncated", full.substr(0, 47));
  expect_index_refused(dir, dir / "model.safetensors.index.json", "invalid JSON", "unexpected end of input", 47);
}

TEST(ShardedSafetensors, EmptyIndex) {
  const fs::path dir = index_dir("empty_index", "");
  expect_index_refused(dir, dir / "model.safetensors.index.json", "invalid JSON", "unexpected end of input", 0);
}

TEST(ShardedSafetensors, IndexNotAnObject) {
  const fs::path dir = index_dir("not_object", R"(["weight_map"])");
  expect_index_refused(dir, dir / "model.safetensors.index.json", "index is not a JSON object", "index", 0);
}

TEST(ShardedSafetensors, IndexWithInvalidUtf8) {
  // A lead byte 0xc3 (byte 17) then '(' (byte 18), which cannot continue it.
  const fs::path dir = index_dir("utf8", "{\"weight_map\": {\"\xc3(\": \"model-00001-of-00002.safetensors\"}}");
  expect_index_refused(dir, dir / "model.safetensors.index.json", "invalid JSON", "ill-formed UTF-8", 18);
}

TEST(ShardedSafetensors, IndexWithDuplicateTensorKey) {
  const fs::path dir = index_dir("dup", index_json(kShard1, R"(, "a": "model-00002-of-00002.safetensors")"));
  expect_index_refused(dir, dir / "model.safetensors.index.json", "duplicate JSON key", "\"a\"", vkq::FormatError::kNoOffset);
}

TEST(ShardedSafetensors, IndexNestedTenThousandDeep) {
  const fs::path dir =
      index_dir("deep", R"({"metadata": )" + std::string(10000, '[') + std::string(10000, ']') + R"(, "weight_map": {}})");
  expect_index_refused(dir, dir / "model.safetensors.index.json", "nested deeper than 64 levels", "JSON",
                       vkq::FormatError::kNoOffset);
}

TEST(ShardedSafetensors, IndexOverTheSizeCap) {
  // A sparse file one byte over 100 MB: refused from its size, before parsing.
  const fs::path dir = index_dir("huge", index_json());
  const fs::path idx = dir / "model.safetensors.index.json";
  fs::resize_file(idx, 100'000'001);
  expect_index_refused(dir, idx, "index is 100000001 bytes, over the 100000000-byte cap", "index", vkq::FormatError::kNoOffset);
}

TEST(ShardedSafetensors, EscapingShardNameNamesTheTensorAndShard) {
  const fs::path dir = index_dir("escape_named", index_json("../../etc/passwd"));
  expect_index_refused(dir, dir / "model.safetensors.index.json", "shard name '../../etc/passwd' contains a path separator",
                       "tensor 'a'", vkq::FormatError::kNoOffset);
}

TEST(ShardedSafetensors, ShardWithBadHeaderNamesTheShard) {
  // A shard listed by a valid index but truncated: the shard file is named.
  const fs::path dir = index_dir("bad_shard", index_json());
  fs::resize_file(dir / kShard2, 5);
  expect_index_refused(dir, dir / kShard2, "truncated safetensors file: 5 bytes", "header length", vkq::FormatError::kNoOffset);
}

}  // namespace
